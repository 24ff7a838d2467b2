//! Temporary: cost of Rego constructs on the VM.
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::RegoVM;
use std::io::BufRead;
use std::time::Instant;

fn run(name: &str, body: &str, inputs: &[regorus::Value], data: &regorus::Value) {
    run_with(name, body, inputs, data, None)
}

fn run_with(name: &str, body: &str, inputs: &[regorus::Value], data: &regorus::Value, replace: Option<(&str, &str)>) {
    let mut engine = regorus::Engine::new();
    for (p, src) in crmrisk::engine::library::modules() {
        let src = match replace {
            Some((rp, rs)) if rp == p => rs,
            _ => src,
        };
        engine.add_policy(p.to_owned(), src.to_owned()).unwrap();
    }
    engine.add_data(data.clone()).unwrap();
    engine
        .add_policy("m.rego".into(), format!("package m\nimport rego.v1\nimport data.crmrisk.lib\n{body}\n"))
        .unwrap();
    let rule: regorus::Rc<str> = "data.m.r".into();
    let compiled = engine.compile_with_entrypoint(&rule).unwrap();
    let program = Compiler::compile_from_policy(&compiled, &["data.m.r"]).unwrap();
    let mut vm = RegoVM::new();
    vm.load_program(program);
    vm.set_max_instructions(usize::MAX);
    vm.set_data(data.clone()).unwrap();
    let t0 = Instant::now();
    let mut last = regorus::Value::Undefined;
    for _ in 0..5 {
        for input in inputs {
            vm.set_input(input.clone());
            last = vm.execute().unwrap();
        }
    }
    let per = t0.elapsed() / (5 * inputs.len() as u32);
    let s = last.to_string();
    println!("{name:40} {per:>10?}  {}", &s[..s.len().min(60)]);
}

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let inputs: Vec<regorus::Value> = std::io::BufReader::new(std::fs::File::open(&path).unwrap())
        .lines()
        .take(1000)
        .map(|l| regorus::Value::from_json_str(&l.unwrap()).unwrap())
        .collect();
    let data = regorus::Value::from_json_str(crmrisk::engine::library::metadata_json().unwrap()).unwrap();
    if let Ok(area) = std::env::var("AREA") {
        if area == "micro" { /* fallthrough */
        } else {
            let (path, src) = crmrisk::engine::library::modules().find(|(p, _)| p.contains(&area)).unwrap();
            let pkg =
                src.lines().find(|l| l.starts_with("package ")).unwrap().trim_start_matches("package ").to_owned();
            let blocks: Vec<&str> = src.split("\nfindings contains").collect();
            // blocks[0] is the prelude; each later block starts a findings rule and may carry helpers after it.
            for k in 0..blocks.len() {
                let mut variant = blocks[0].to_owned();
                for (j, b) in blocks.iter().enumerate().skip(1) {
                    // keep helpers of every block, findings only of block k
                    let end = b.find("\n}\n").map(|e| e + 3).unwrap_or(b.len());
                    if j == k {
                        variant.push_str("\nfindings contains");
                        variant.push_str(&b[..end]);
                    }
                    variant.push_str(&b[end..]);
                }
                let first =
                    blocks.get(k).map(|b| b.lines().skip(1).take(4).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                let label = if k == 0 {
                    "none (helpers only)".to_owned()
                } else {
                    format!("#{k} {}", first.split_whitespace().collect::<Vec<_>>().join(" "))
                };
                run_with(
                    &label.chars().take(40).collect::<String>(),
                    &format!("r := data.{pkg}.findings"),
                    &inputs,
                    &data,
                    Some((path, &variant)),
                );
            }
            return;
        }
    }
    run("const", "r := 1", &inputs, &data);
    run("data.lib rule x1", "r if data.crmrisk.lib.has_replicas", &inputs, &data);
    run(
        "data.lib rule x10",
        &(0..10).map(|i| format!("r contains {i} if data.crmrisk.lib.has_replicas")).collect::<Vec<_>>().join("\n"),
        &inputs,
        &data,
    );
    run(
        "data.lib const x10",
        &(0..10).map(|i| format!("r contains {i} if data.crmrisk.lib.zone_keys")).collect::<Vec<_>>().join("\n"),
        &inputs,
        &data,
    );
    run(
        "data.lib desc x10",
        &(0..10).map(|i| format!("r contains {i} if data.crmrisk.lib.workload_desc")).collect::<Vec<_>>().join("\n"),
        &inputs,
        &data,
    );
    run(
        "local copy of has_replicas x10",
        &(String::from("hr if is_number(input.workload.replicas)\n")
            + &(0..10).map(|i| format!("r contains {i} if hr")).collect::<Vec<_>>().join("\n")),
        &inputs,
        &data,
    );
    run(
        "lib.params x10",
        &(0..10)
            .map(|i| format!("r contains {i} if lib.params(\"disasterRecovery\").minReplicas"))
            .collect::<Vec<_>>()
            .join("\n"),
        &inputs,
        &data,
    );
    run("data.crmrisk.metadata x1", "r := count(data.crmrisk.rules)", &inputs, &data);
    run("input path", "r := input.workload.name", &inputs, &data);
    run(
        "input path x10",
        &(0..10).map(|i| format!("r contains {i} if input.workload.name")).collect::<Vec<_>>().join("\n"),
        &inputs,
        &data,
    );
    run(
        "input.params x10",
        &(0..10).map(|i| format!("r contains {i} if input.params")).collect::<Vec<_>>().join("\n"),
        &inputs,
        &data,
    );
    run(
        "count(input.containers) x10",
        &(0..10).map(|i| format!("r contains {i} if count(input.containers) > 0")).collect::<Vec<_>>().join("\n"),
        &inputs,
        &data,
    );
    run(
        "local fn x10",
        &(format!("f(x) if x == 1\n")
            + &(0..10).map(|i| format!("r contains {i} if f(1)")).collect::<Vec<_>>().join("\n")),
        &inputs,
        &data,
    );
    run(
        "local rule x10",
        &(format!("g if input.workload.name\n")
            + &(0..10).map(|i| format!("r contains {i} if g")).collect::<Vec<_>>().join("\n")),
        &inputs,
        &data,
    );
    run(
        "regex.match x10",
        &(0..10)
            .map(|i| format!("r contains {i} if regex.match(`a+b`, input.workload.name)"))
            .collect::<Vec<_>>()
            .join("\n"),
        &inputs,
        &data,
    );
    run(
        "contains x10",
        &(0..10)
            .map(|i| format!("r contains {i} if contains(input.workload.name, \"ab\")"))
            .collect::<Vec<_>>()
            .join("\n"),
        &inputs,
        &data,
    );
    run(
        "object.get x10",
        &(0..10)
            .map(|i| format!("r contains {i} if object.get(input.workload, \"name\", \"\")"))
            .collect::<Vec<_>>()
            .join("\n"),
        &inputs,
        &data,
    );
    run(
        "obj build x10",
        &(0..10)
            .map(|i| {
                format!(
                    "r contains x if x := {{\"id\": \"X-{i}\", \"k\": input.workload.kind, \"n\": input.workload.name}}"
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        &inputs,
        &data,
    );
    run("findings encryption", "r := data.crmrisk.encryption.findings", &inputs, &data);
    run("findings backups", "r := data.crmrisk.backups.findings", &inputs, &data);
    run("findings rbac", "r := data.crmrisk.rbac.findings", &inputs, &data);
    run("findings dr", "r := data.crmrisk.disaster_recovery.findings", &inputs, &data);
}
