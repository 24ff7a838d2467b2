//! Inputs and timings for the engine-vs-OPA benchmark (`bench/engine-vs-opa.sh`).
//!
//! ```text
//! bench_inputs generate --count N --out inputs.jsonl [--seed S]
//!     N Rego input documents (exactly what the engine evaluates, `params` included), one per
//!     line, from the same generator as the criterion bench (benches/support/gen.rs). `--seed`
//!     picks another cluster of the same kind (the default is the benchmarks' seed); the
//!     profile-guided build trains on one (bench/pgo-build.sh).
//! bench_inputs eval --inputs inputs.jsonl --out findings.jsonl [--warmup W] [--only AREA] [--backend vm|interpreter]
//!     Evaluates every input with crmrisk's engine (policy compiled once, inputs parsed before
//!     the clock starts), writes the findings of each input, prints a JSON summary with the
//!     wall and CPU (user+sys, getrusage) time of the evaluations alone. `--only rbac` (or
//!     encryption, backups, disasterRecovery) compiles one area, to see where the time goes;
//!     `--backend interpreter` evaluates on regorus' interpreter instead of its VM (the default).
//! bench_inputs assess --count N [--warmup W] [--seed S]
//!     The whole per-workload pipeline as the operator runs it (context build + Rego + scoring)
//!     over N generated workloads; prints the same summary.
//! bench_inputs compare A.jsonl B.jsonl
//!     Checks that two findings files hold the same (workload, rule id) findings for every
//!     input; prints every difference and exits 1 if there is one. Messages are compared too.
//! ```
//!
//! Findings files have one line per input: `{"index": i, "workload": "Kind/ns/name",
//! "findings": [[id, message], ...]}` with findings sorted; `bench/opa-runner` writes the same.

/// The allocator the `crmrisk` binary uses, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeSet;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crmrisk::api::CRMRiskPolicySpec;
use crmrisk::assess::CompiledPolicy;
use crmrisk::context::{self, ObjectSet};
use crmrisk::engine::{Backend, Limits, PolicySet, PolicySetSpec};
use crmrisk::model::Category;
use serde_json::{Value, json};

#[path = "../benches/support/gen.rs"]
mod generator;

type Result<T> = std::result::Result<T, String>;

/// User + system CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

struct Args(Vec<String>);

impl Args {
    fn value(&self, flag: &str) -> Option<&str> {
        self.0.iter().position(|a| a == flag).and_then(|i| self.0.get(i + 1)).map(String::as_str)
    }
    fn required(&self, flag: &str) -> Result<&str> {
        self.value(flag).ok_or_else(|| format!("{flag} is required"))
    }
    /// `--seed S` (decimal or 0x hex, `_` allowed), the benchmarks' seed without it.
    fn seed(&self) -> Result<u64> {
        match self.value("--seed") {
            None => Ok(generator::SEED),
            Some(v) => {
                let digits = v.replace('_', "");
                match digits.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => digits.parse(),
                }
            }
            .map_err(|_| format!("--seed {v}: not a number")),
        }
    }
    fn number(&self, flag: &str, default: usize) -> Result<usize> {
        match self.value(flag) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{flag} {v}: not a number")),
        }
    }
}

fn workload_of(input: &Value) -> String {
    let w = &input["workload"];
    format!(
        "{}/{}/{}",
        w["kind"].as_str().unwrap_or_default(),
        w["namespace"].as_str().unwrap_or_default(),
        w["name"].as_str().unwrap_or_default()
    )
}

/// The generated cluster as an object set.
fn generated(count: usize, seed: u64) -> Result<ObjectSet> {
    let set = ObjectSet::from_values(generator::generate(count, seed)).map_err(|e| e.to_string())?;
    if set.workloads().len() != count {
        return Err(format!("generator made {} workloads, not {count}", set.workloads().len()));
    }
    Ok(set)
}

fn generate(args: &Args) -> Result<()> {
    let count = args.number("--count", 10_000)?;
    let out = PathBuf::from(args.required("--out")?);
    let t0 = Instant::now();
    let objects = generated(count, args.seed()?)?;
    let generated_in = t0.elapsed();
    let params = serde_json::to_value(&CRMRiskPolicySpec::default().checks).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::new(file);
    let t0 = Instant::now();
    let mut built_in = std::time::Duration::ZERO;
    for workload in objects.workloads() {
        let t1 = Instant::now();
        let context = context::build(workload, &objects);
        built_in += t1.elapsed();
        let mut doc = serde_json::to_value(context).map_err(|e| e.to_string())?;
        doc["params"] = params.clone();
        serde_json::to_writer(&mut w, &doc).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {count} inputs to {} (objects generated and indexed in {generated_in:.2?}, contexts built in \
         {built_in:.2?}, everything written in {:.2?})",
        out.display(),
        t0.elapsed()
    );
    Ok(())
}

fn summary(engine: &str, what: &str, count: usize, wall: f64, cpu: f64, findings: usize) -> Value {
    json!({
        "engine": engine, "measured": what, "count": count, "findings": findings,
        "wall_seconds": wall, "cpu_seconds": cpu,
        "evals_per_second": count as f64 / wall, "evals_per_cpu_second": count as f64 / cpu,
    })
}

fn eval(args: &Args) -> Result<()> {
    let inputs_path = args.required("--inputs")?;
    let out = PathBuf::from(args.required("--out")?);
    let warmup = args.number("--warmup", 200)?;
    let file = std::fs::File::open(inputs_path).map_err(|e| format!("{inputs_path}: {e}"))?;
    let mut workloads = Vec::new();
    let mut inputs = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let doc: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        workloads.push(workload_of(&doc));
        inputs.push(regorus::Value::from_json_str(&line).map_err(|e| e.to_string())?);
    }
    let mut spec = PolicySetSpec::default();
    if let Some(only) = args.value("--only") {
        let category = Category::BUILT_IN
            .into_iter()
            .find(|c| c.as_str() == only || c.package() == only)
            .ok_or_else(|| format!("--only {only}: not one of encryption, backups, rbac, disasterRecovery"))?;
        spec.categories = [category].into_iter().collect();
    }
    let set = PolicySet::compile(&spec).map_err(|e| e.to_string())?;
    let backend = match args.value("--backend") {
        None | Some("vm") => Backend::Vm,
        Some("interpreter") => Backend::Interpreter,
        Some(other) => return Err(format!("--backend {other}: not one of vm, interpreter")),
    };
    let mut evaluator = set
        .evaluator_on(backend)
        .ok_or_else(|| format!("the VM cannot run the library: {}", set.vm_unavailable().unwrap_or("?")))?;
    for input in inputs.iter().take(warmup) {
        evaluator.evaluate_value(input.clone()).map_err(|e| e.to_string())?;
    }
    let mut results = Vec::with_capacity(inputs.len());
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    for input in &inputs {
        results.push(evaluator.evaluate_value(input.clone()));
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);

    let file = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::new(file);
    let mut total = 0;
    for (index, (workload, result)) in workloads.iter().zip(results).enumerate() {
        let evaluation = result.map_err(|e| format!("input {index} ({workload}): {e}"))?;
        let mut findings: Vec<(String, String)> = evaluation.findings.into_iter().map(|f| (f.id, f.message)).collect();
        findings.sort();
        total += findings.len();
        let line = json!({"index": index, "workload": workload, "findings": findings});
        writeln!(w, "{line}").map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    let what = match args.value("--only") {
        Some(area) => format!("rego evaluation ({area} only)"),
        None => "rego evaluation".to_owned(),
    };
    let engine = match backend {
        Backend::Vm => "crmrisk (regorus VM)",
        Backend::Interpreter => "crmrisk (regorus interpreter)",
    };
    println!("{}", summary(engine, &what, inputs.len(), wall, cpu, total));
    Ok(())
}

fn assess(args: &Args) -> Result<()> {
    let count = args.number("--count", 10_000)?;
    let warmup = args.number("--warmup", 200)?;
    let objects = generated(count, args.seed()?)?;
    let policy = CompiledPolicy::compile("default", &CRMRiskPolicySpec::default(), Vec::new(), Limits::default())
        .map_err(|e| e.to_string())?;
    let mut evaluator = policy.evaluator();
    let now = jiff::Timestamp::now();
    for w in objects.workloads().iter().take(warmup) {
        policy.assess(&mut evaluator, w, &objects, &[], now).map_err(|e| e.to_string())?;
    }
    let mut total = 0;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    for w in objects.workloads() {
        total += policy.assess(&mut evaluator, w, &objects, &[], now).map_err(|e| e.to_string())?.findings.len();
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    println!("{}", summary("crmrisk", "context build + rego + scoring", count, wall, cpu, total));
    Ok(())
}

/// The findings of one input: its workload and its (rule id, message) pairs.
type InputFindings = (String, Vec<(String, String)>);

/// One findings file, in input order.
fn read_findings(path: &str) -> Result<Vec<InputFindings>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        if v["index"].as_u64() != Some(n as u64) {
            return Err(format!("{path}:{}: index {} out of order", n + 1, v["index"]));
        }
        let findings: Vec<(String, String)> =
            serde_json::from_value(v["findings"].clone()).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        out.push((v["workload"].as_str().unwrap_or_default().to_owned(), findings));
    }
    Ok(out)
}

fn compare(args: &Args) -> Result<bool> {
    let (a_path, b_path) = match (args.0.get(1), args.0.get(2)) {
        (Some(a), Some(b)) => (a.as_str(), b.as_str()),
        _ => return Err("compare needs two findings files".into()),
    };
    let (a, b) = (read_findings(a_path)?, read_findings(b_path)?);
    if a.len() != b.len() {
        eprintln!("DIFFERENT: {a_path} has {} inputs, {b_path} has {}", a.len(), b.len());
        return Ok(false);
    }
    let (mut id_diffs, mut message_diffs, mut findings) = (0, 0, 0);
    const SHOW: usize = 20;
    for (index, ((wa, fa), (wb, fb))) in a.iter().zip(&b).enumerate() {
        findings += fa.len();
        if wa != wb {
            return Err(format!("input {index}: workload {wa} in {a_path} but {wb} in {b_path}"));
        }
        let ids_a: BTreeSet<&str> = fa.iter().map(|(id, _)| id.as_str()).collect();
        let ids_b: BTreeSet<&str> = fb.iter().map(|(id, _)| id.as_str()).collect();
        if ids_a != ids_b {
            id_diffs += 1;
            if id_diffs <= SHOW {
                let only_a: Vec<_> = ids_a.difference(&ids_b).collect();
                let only_b: Vec<_> = ids_b.difference(&ids_a).collect();
                eprintln!("input {index} {wa}: rule ids only in {a_path}: {only_a:?}; only in {b_path}: {only_b:?}");
            }
        } else if fa != fb {
            message_diffs += 1;
            if message_diffs <= SHOW {
                let sa: BTreeSet<_> = fa.iter().collect();
                let sb: BTreeSet<_> = fb.iter().collect();
                for (id, m) in sa.difference(&sb) {
                    eprintln!("input {index} {wa}: {id} only in {a_path}: {m}");
                }
                for (id, m) in sb.difference(&sa) {
                    eprintln!("input {index} {wa}: {id} only in {b_path}: {m}");
                }
            }
        }
    }
    if id_diffs > 0 || message_diffs > 0 {
        eprintln!(
            "DIFFERENT: {id_diffs} of {} inputs differ in rule ids, {message_diffs} more only in messages",
            a.len()
        );
        return Ok(false);
    }
    eprintln!("same findings: {} inputs, {findings} findings (rule ids and messages)", a.len());
    Ok(true)
}

fn main() -> ExitCode {
    let args = Args(std::env::args().skip(1).collect());
    let result = match args.0.first().map(String::as_str) {
        Some("generate") => generate(&args).map(|()| true),
        Some("eval") => eval(&args).map(|()| true),
        Some("assess") => assess(&args).map(|()| true),
        Some("compare") => compare(&args),
        _ => Err("usage: bench_inputs generate|eval|assess|compare ... (see the source's header)".into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
