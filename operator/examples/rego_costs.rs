//! What Rego constructs cost on regorus' VM, to see where the library's time goes
//! (BENCHMARKS.md, "Target").
//!
//! ```text
//! rego_costs constructs INPUTS.jsonl      # single constructs (a cached rule read, a function call, ...)
//! rego_costs rules AREA INPUTS.jsonl      # the library with one `findings` body of AREA at a time
//! rego_costs variant AREA FILE INPUTS.jsonl  # AREA's findings as shipped, then with FILE as its module
//! rego_costs library DIR INPUTS.jsonl PASSES  # the whole library read from DIR, PASSES passes, untimed
//! ```
//!
//! `library` is for counting instructions, which unlike time does not depend on the machine's
//! load: run it under `valgrind --tool=cachegrind --cache-sim=no` with PASSES 1 and 2, and the
//! difference of the two counts is one evaluation of every input (step 6 of
//! `bench/engine-vs-opa.sh` does the same for the built-in library and for OPA). It prints the number of
//! findings and a digest of them, so two versions of the library can be checked to agree. With
//! `REGO_COSTS_LISTING=FILE` it also writes the VM program: each rule's register count and
//! bodies, then regorus' assembly listing.
//!
//! INPUTS.jsonl: input documents as `bench_inputs generate` writes them (the first 1,000 are
//! used). Each probe compiles the library plus a module `m` with a rule `r`, lowers it to the VM
//! and evaluates `data.m.r` five times over the inputs; it prints the time per evaluation of the
//! fastest pass (wall clock; the fastest pass is the one least disturbed by other load) and the last value. AREA is a file name under
//! `policies/` without its extension: `encryption`, `rbac`, `backups`, `disaster_recovery`.

/// The allocator the `crmrisk` binary uses, so instruction counts are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;

type Result<T> = std::result::Result<T, String>;

/// `modules` and `data` plus a module `m` holding `rule`, lowered to the VM with `data.m.r` as the
/// entry point.
fn compile(modules: Vec<(String, String)>, data: &regorus::Value, rule: &str) -> Result<Arc<Program>> {
    let mut engine = regorus::Engine::new();
    for (path, src) in modules {
        engine.add_policy(path, src).map_err(|e| e.to_string())?;
    }
    engine.add_data(data.clone()).map_err(|e| e.to_string())?;
    let module = format!("package m\nimport rego.v1\nimport data.crmrisk.lib\n{rule}\n");
    engine.add_policy("m.rego".into(), module).map_err(|e| e.to_string())?;
    let entry: regorus::Rc<str> = "data.m.r".into();
    let compiled = engine.compile_with_entrypoint(&entry).map_err(|e| e.to_string())?;
    Compiler::compile_from_policy(&compiled, &["data.m.r"]).map_err(|e| e.to_string())
}

/// A VM running `program` over `data`, without an instruction limit.
fn vm_for(mut program: Arc<Program>, data: regorus::Value) -> Result<RegoVM> {
    // Slimmed as the engine does, so the counts are the engine's.
    crmrisk::engine::slim::slim(&mut program);
    let mut vm = RegoVM::new();
    vm.load_program(program);
    vm.set_max_instructions(usize::MAX);
    vm.set_data(data).map_err(|e| e.to_string())?;
    Ok(vm)
}

/// The library, with the module at `replace.0` swapped for `replace.1`.
fn probe(label: &str, rule: &str, inputs: &[regorus::Value], replace: Option<(&str, &str)>) -> Result<()> {
    let modules = crmrisk::engine::library::modules()
        .map(|(path, src)| {
            let src = match replace {
                Some((p, s)) if p == path => s,
                _ => src,
            };
            (path.to_owned(), src.to_owned())
        })
        .collect();
    let data = regorus::Value::from_json_str(crmrisk::engine::library::metadata_json().unwrap_or("{}"))
        .map_err(|e| e.to_string())?;
    let mut vm = vm_for(compile(modules, &data, rule)?, data)?;
    let mut last = regorus::Value::Undefined;
    let mut fastest = std::time::Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        for input in inputs {
            vm.set_input(input.clone());
            last = vm.execute().map_err(|e| e.to_string())?;
        }
        fastest = fastest.min(started.elapsed());
    }
    let each = fastest / inputs.len().max(1) as u32;
    let shown = last.to_string();
    println!("{label:48} {each:>10.2?}  {}", shown.chars().take(50).collect::<String>());
    Ok(())
}

/// `n` copies of a rule body, as `r contains i if <body>`.
fn times(n: usize, body: &str) -> String {
    (0..n).map(|i| format!("r contains {i} if {body}")).collect::<Vec<_>>().join("\n")
}

fn constructs(inputs: &[regorus::Value]) -> Result<()> {
    let workload_name = "input.workload.name";
    probe("constant rule", "r := 1", inputs, None)?;
    probe("input path x10", &times(10, workload_name), inputs, None)?;
    probe("cached lib rule read x10", &times(10, "data.crmrisk.lib.workload_desc"), inputs, None)?;
    probe(
        "lib.enabled(area, name) call x10",
        &times(10, "lib.enabled(\"encryption\", \"requireIngressTLS\")"),
        inputs,
        None,
    )?;
    probe(
        "parameter read directly x10",
        &times(10, "input.params.encryption.requireIngressTLS != false"),
        inputs,
        None,
    )?;
    probe("local rule read x10", &format!("g if {workload_name}\n{}", times(10, "g")), inputs, None)?;
    probe("local function call x10", &format!("f(x) if x == 1\n{}", times(10, "f(1)")), inputs, None)?;
    probe("regex.match x10", &times(10, "regex.match(`a+b`, input.workload.name)"), inputs, None)?;
    probe("contains x10", &times(10, "contains(input.workload.name, \"ab\")"), inputs, None)?;
    probe(
        "sprintf x10",
        &times(10, "sprintf(\"%s %s/%s\", [input.workload.kind, input.workload.namespace, input.workload.name])"),
        inputs,
        None,
    )?;
    for area in ["encryption", "backups", "rbac", "disaster_recovery"] {
        probe(&format!("all findings of {area}"), &format!("r := data.crmrisk.{area}.findings"), inputs, None)?;
    }
    Ok(())
}

/// The embedded module of an area: its path, its text and its package.
fn area_module(area: &str) -> Result<(&'static str, &'static str, String)> {
    let (path, src) = crmrisk::engine::library::modules()
        .find(|(p, _)| p.ends_with(&format!("/{area}.rego")))
        .ok_or_else(|| format!("no module policies/*/{area}.rego"))?;
    let package = src
        .lines()
        .find_map(|l| l.strip_prefix("package "))
        .ok_or_else(|| format!("{path}: no package line"))?
        .to_owned();
    Ok((path, src, package))
}

/// The bodies of the rules that produce findings: `findings` and the groups it reads
/// (`storage_findings`, `cnpg_findings`, ...), as byte ranges of `src`, each from its head line
/// to its closing `}` line. A group's entry body (`findings contains f if { ...; some f in
/// x_findings }`) is not listed: it is kept like a helper.
fn finding_bodies(src: &str) -> Vec<(usize, usize)> {
    let mut bodies = Vec::new();
    let mut offset = 0;
    let mut start = None;
    for line in src.split_inclusive('\n') {
        let head = line.split(" contains ").next().unwrap_or("");
        if start.is_none()
            && line.contains(" contains ")
            && head.ends_with("findings")
            && !head.contains(char::is_whitespace)
        {
            start = Some(offset);
        }
        offset += line.len();
        if let Some(s) = start
            && (line == "}\n" || line == "}")
        {
            if !src[s..offset].contains("some f in ") {
                bodies.push((s, offset));
            }
            start = None;
        }
    }
    bodies
}

/// The area's module with only its `k`-th finding body kept (helpers and group entries all
/// kept); 0 = none.
fn rules(area: &str, inputs: &[regorus::Value]) -> Result<()> {
    let (path, src, package) = area_module(area)?;
    let bodies = finding_bodies(src);
    for k in 0..=bodies.len() {
        let mut variant = String::with_capacity(src.len());
        let mut last = 0;
        for (j, &(s, e)) in bodies.iter().enumerate() {
            variant.push_str(&src[last..s]);
            if j + 1 == k {
                variant.push_str(&src[s..e]);
            }
            last = e;
        }
        variant.push_str(&src[last..]);
        // A group left without bodies would be undefined where its entry reads it.
        for &(s, e) in &bodies {
            let name = src[s..e].split(" contains ").next().unwrap_or("findings");
            if name != "findings" && !variant.contains(&format!("\n{name} contains ")) {
                variant.push_str(&format!("\n{name} contains 0 if false\n"));
            }
        }
        let label = match k {
            0 => "helpers only".to_owned(),
            k => {
                let (s, e) = bodies[k - 1];
                let head: String = src[s..e].lines().skip(1).take(3).collect::<Vec<_>>().join(" ");
                format!("#{k} {}", head.split_whitespace().collect::<Vec<_>>().join(" "))
            }
        };
        let label: String = label.chars().take(48).collect();
        probe(&label, &format!("r := data.{package}.findings"), inputs, Some((path, &variant)))?;
    }
    Ok(())
}

/// The area's findings with the shipped module, then with the module at `file` in its place: to
/// try a rewrite without rebuilding.
fn variant(area: &str, file: &str, inputs: &[regorus::Value]) -> Result<()> {
    let (path, _, package) = area_module(area)?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let rule = format!("r := data.{package}.findings");
    probe(&format!("{area} as shipped"), &rule, inputs, None)?;
    probe(&format!("{area} from {file}"), &rule, inputs, Some((path, &text)))
}

/// Every input evaluated `passes` times by the library in `dir` (its `.rego` files without the
/// `*_test.rego` ones, and `metadata.json`), with one entry rule over the four areas as the engine
/// builds it. Nothing is timed.
fn library(dir: &str, inputs: &[regorus::Value], passes: usize) -> Result<()> {
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".rego") && !name.ends_with("_test.rego") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut modules = Vec::with_capacity(files.len());
    for path in &files {
        let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        modules.push((path.to_string_lossy().into_owned(), src));
    }
    let metadata = format!("{dir}/metadata.json");
    let data =
        regorus::Value::from_json_str(&std::fs::read_to_string(&metadata).map_err(|e| format!("{metadata}: {e}"))?)
            .map_err(|e| e.to_string())?;
    let rule = "r := {\"encryption\": data.crmrisk.encryption.findings, \"backups\": data.crmrisk.backups.findings, \"rbac\": data.crmrisk.rbac.findings, \"disasterRecovery\": data.crmrisk.disaster_recovery.findings}";
    let program = compile(modules, &data, rule)?;
    if let Some(path) = std::env::var_os("REGO_COSTS_LISTING") {
        let mut text = String::from("; rules: registers, bodies per definition, name\n");
        for r in &program.rule_infos {
            let bodies: Vec<usize> = r.definitions.iter().map(Vec::len).collect();
            text.push_str(&format!("; {:3} {:?} {}\n", r.num_registers, bodies, r.name));
        }
        let config = regorus::rvm::program::AssemblyListingConfig::default();
        text.push_str(&regorus::rvm::program::generate_assembly_listing(&program, &config));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.to_string_lossy()))?;
    }
    let mut vm = vm_for(program, data)?;
    let mut results = Vec::with_capacity(inputs.len());
    for pass in 0..passes {
        for input in inputs {
            vm.set_input(input.clone());
            let value = vm.execute().map_err(|e| e.to_string())?;
            if pass == 0 {
                results.push(value);
            }
        }
    }
    let mut findings = 0;
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    for value in &results {
        let text = value.to_string();
        std::hash::Hash::hash(&text, &mut digest);
        if let Ok(areas) = value.as_object() {
            findings += areas.values().map(|set| set.as_set().map_or(0, |s| s.len())).sum::<usize>();
        }
    }
    println!("{} inputs, {findings} findings, digest {:016x}", results.len(), std::hash::Hasher::finish(&digest));
    Ok(())
}

fn read_inputs(path: &str) -> Result<Vec<regorus::Value>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    std::io::BufReader::new(file)
        .lines()
        .take(1000)
        .map(|line| regorus::Value::from_json_str(&line.map_err(|e| e.to_string())?).map_err(|e| e.to_string()))
        .collect()
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["constructs", inputs] => read_inputs(inputs).and_then(|i| constructs(&i)),
        ["rules", area, inputs] => read_inputs(inputs).and_then(|i| rules(area, &i)),
        ["variant", area, file, inputs] => read_inputs(inputs).and_then(|i| variant(area, file, &i)),
        ["library", dir, inputs, passes] => {
            let passes = passes.parse().map_err(|_| format!("PASSES: not a number: {passes}"));
            passes.and_then(|p| read_inputs(inputs).and_then(|i| library(dir, &i, p)))
        }
        _ => Err("usage: rego_costs constructs INPUTS.jsonl | rego_costs rules AREA INPUTS.jsonl | rego_costs variant AREA FILE INPUTS.jsonl | rego_costs library DIR INPUTS.jsonl PASSES".to_owned()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rego_costs: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
