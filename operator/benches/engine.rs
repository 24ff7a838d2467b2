//! Engine throughput over 1,000 generated workloads (`support/gen.rs`), default policy compiled
//! once:
//!
//! - `assess`: what the operator and `crmrisk scan` do per workload: build the context, evaluate
//!   the Rego library, score, apply exceptions;
//! - `context`: the context builder alone (input document, serialized as the engine gets it);
//! - `convert`: turning input documents into regorus values (JSON text, then parsed), as
//!   `Evaluator::evaluate` does;
//! - `rego`: the Rego evaluation alone, on documents built beforehand.
//!
//! Throughput is reported in workloads per second. Run with `cargo bench -p crmrisk --bench
//! engine` (add `-- --quick` for a short run); the figures are in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crmrisk::api::CRMRiskPolicySpec;
use crmrisk::assess::CompiledPolicy;
use crmrisk::context::{self, ObjectSet};
use crmrisk::engine::Limits;
use jiff::Timestamp;

/// The allocator the `crmrisk` binary uses, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/gen.rs"]
mod generator;

const WORKLOADS: usize = 1_000;

fn engine(c: &mut Criterion) {
    let objects = ObjectSet::from_values(generator::generate(WORKLOADS, generator::SEED))
        .expect("generated objects are well-formed");
    let workloads = objects.workloads().to_vec();
    assert_eq!(workloads.len(), WORKLOADS);
    let spec = CRMRiskPolicySpec::default();
    let policy = CompiledPolicy::compile("default", &spec, Vec::new(), Limits::default()).expect("default policy");
    let mut evaluator = policy.evaluator();
    let now = Timestamp::now();

    // Sanity: the inputs are realistic enough that rules fire.
    let findings: usize = workloads
        .iter()
        .map(|w| policy.assess(&mut evaluator, w, &objects, &[], now).expect("assessment").findings.len())
        .sum();
    assert!(findings > WORKLOADS, "only {findings} findings for {WORKLOADS} workloads");
    eprintln!("{WORKLOADS} workloads, {findings} findings");

    let params = serde_json::to_value(&spec.checks).expect("params");
    let documents: Vec<serde_json::Value> = workloads
        .iter()
        .map(|w| {
            let mut doc = serde_json::to_value(context::build(w, &objects)).expect("context serializes");
            doc["params"] = params.clone();
            doc
        })
        .collect();
    let inputs: Vec<regorus::Value> =
        documents.iter().map(|d| regorus::Value::from_json_str(&d.to_string()).expect("regorus value")).collect();
    let set = crmrisk::engine::PolicySet::compile(&crmrisk::engine::PolicySetSpec::default()).expect("policy set");
    let mut raw = set.evaluator();

    let mut group = c.benchmark_group("engine_1000_workloads");
    group.throughput(Throughput::Elements(WORKLOADS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("assess", |b| {
        b.iter(|| {
            for w in &workloads {
                black_box(policy.assess(&mut evaluator, w, &objects, &[], now).expect("assessment"));
            }
        })
    });
    group.bench_function("context", |b| {
        b.iter(|| {
            for w in &workloads {
                black_box(serde_json::to_value(context::build(w, &objects)).expect("context serializes"));
            }
        })
    });
    group.bench_function("convert", |b| {
        b.iter(|| {
            for doc in &documents {
                // What `Evaluator::evaluate` does before evaluating: the JSON size (written to a
                // counter, here a sink), then a regorus value read from the tree.
                serde_json::to_writer(std::io::sink(), doc).expect("JSON");
                black_box(<regorus::Value as serde::Deserialize>::deserialize(doc).expect("regorus value"));
            }
        })
    });
    group.bench_function("rego", |b| {
        b.iter(|| {
            for input in &inputs {
                black_box(raw.evaluate_value(input.clone()).expect("evaluation"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
