//! The built-in Rego library (`policies/`): its `*_test.rego` tests pass under regorus, and its
//! rule metadata is complete and matches the rule ids the Rego emits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crmrisk::engine::testing::{print_report, run_tests};

/// Rego tests the library has today; lower it only when tests are merged, never to hide a loss.
const MIN_TESTS: usize = 220;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn rego_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rego_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rego") {
            out.push(path);
        }
    }
    out.sort();
}

/// Rule ids a Rego source emits: written as `"id": "XXX-000"` in a finding object, or passed as
/// the first argument of a function that builds the finding (`binding_finding("RBAC-002", ...)`).
fn emitted_ids(source: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for opener in ["\"id\":", "("] {
        let mut rest = source;
        while let Some(pos) = rest.find(opener) {
            rest = &rest[pos + opener.len()..];
            let value = rest.trim_start();
            let Some(value) = value.strip_prefix('"') else { continue };
            let Some(end) = value.find('"') else { break };
            let id = &value[..end];
            // After `(` only a rule id followed by a further argument counts: `("RBAC-002", ...`.
            if opener == "(" && (category_of(id).is_none() || !value[end + 1..].starts_with(',')) {
                continue;
            }
            ids.insert(id.to_string());
        }
    }
    ids
}

/// An id is `PREFIX-NNN`, the prefix naming its area.
fn category_of(id: &str) -> Option<&'static str> {
    let (prefix, number) = id.split_once('-')?;
    if number.len() != 3 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match prefix {
        "ENC" => Some("encryption"),
        "BKP" => Some("backups"),
        "RBAC" => Some("rbac"),
        "DR" => Some("disasterRecovery"),
        _ => None,
    }
}

/// Directory of the package that emits a category's rules.
fn package_dir(category: &str) -> &'static str {
    match category {
        "encryption" => "encryption",
        "backups" => "backups",
        "rbac" => "rbac",
        _ => "disaster_recovery",
    }
}

#[test]
fn rego_tests_pass() {
    let report = run_tests(&policies_dir(), None).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    print_report(&report, &mut out).expect("printing to a Vec");
    println!("{}", String::from_utf8_lossy(&out));

    let failures: Vec<String> = report
        .failures()
        .map(|r| format!("  {} ({}:{}): {}", r.full_name(), r.file, r.line, r.error.as_deref().unwrap_or("failed")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} Rego tests failed:\n{}",
        failures.len(),
        report.total(),
        failures.join("\n")
    );
    assert!(report.total() >= MIN_TESTS, "only {} Rego tests found, expected at least {MIN_TESTS}", report.total());
}

#[test]
fn metadata_matches_the_rules() {
    let dir = policies_dir();
    let text = std::fs::read_to_string(dir.join("metadata.json")).expect("policies/metadata.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("metadata.json is JSON");
    let rules = doc["crmrisk"]["rules"].as_object().expect("metadata.json has crmrisk.rules");

    let mut problems = Vec::new();
    for (id, meta) in rules {
        let Some(category) = category_of(id) else {
            problems.push(format!("{id}: not an id of the form ENC|BKP|RBAC|DR-NNN"));
            continue;
        };
        for field in ["title", "remediation", "description"] {
            if meta[field].as_str().is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("{id}: `{field}` is missing or empty"));
            }
        }
        if meta["category"] != category {
            problems.push(format!("{id}: category is {}, the id says {category}", meta["category"]));
        }
        let allowed: [(&str, &[&str]); 2] = [
            ("control", &["prevention", "detection", "response", "recovery"]),
            ("objective", &["confidentiality", "integrity", "availability"]),
        ];
        for (field, values) in allowed {
            if !meta[field].as_str().is_some_and(|v| values.contains(&v)) {
                problems.push(format!("{id}: `{field}` is {}, expected one of {values:?}", meta[field]));
            }
        }
        for field in ["likelihood", "impact"] {
            if !meta[field].as_u64().is_some_and(|v| (1..=5).contains(&v)) {
                problems.push(format!("{id}: `{field}` is {}, expected an integer 1-5", meta[field]));
            }
        }
    }

    // Every id a rule emits has metadata, in the package of its category; every metadata id is
    // emitted by some rule and exercised by some test.
    let mut emitted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut tested: BTreeSet<String> = BTreeSet::new();
    let mut files = Vec::new();
    rego_files(&dir, &mut files);
    for file in &files {
        let source = std::fs::read_to_string(file).expect("reading a .rego file");
        let rel = file.strip_prefix(&dir).unwrap_or(file).to_string_lossy().replace('\\', "/");
        if rel.ends_with("_test.rego") {
            for id in rules.keys() {
                if source.contains(&format!("\"{id}\"")) {
                    tested.insert(id.clone());
                }
            }
            continue;
        }
        for id in emitted_ids(&source) {
            emitted.entry(id).or_default().insert(rel.clone());
        }
    }
    for (id, files) in &emitted {
        match rules.get(id) {
            None => problems.push(format!("{id}: emitted by {files:?} but missing from metadata.json")),
            Some(meta) => {
                let dir = meta["category"].as_str().map(package_dir).unwrap_or_default();
                if files.iter().any(|f| !f.starts_with(&format!("{dir}/"))) {
                    problems.push(format!("{id}: emitted by {files:?}, outside {dir}/"));
                }
            }
        }
    }
    for id in rules.keys() {
        if !emitted.contains_key(id) {
            problems.push(format!("{id}: in metadata.json but no rule emits it"));
        }
        if !tested.contains(id) {
            problems.push(format!("{id}: no *_test.rego mentions it"));
        }
    }
    assert!(problems.is_empty(), "metadata.json and the rules disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn every_area_has_at_least_six_rules() {
    let text = std::fs::read_to_string(policies_dir().join("metadata.json")).expect("policies/metadata.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("metadata.json is JSON");
    let rules = doc["crmrisk"]["rules"].as_object().expect("crmrisk.rules");
    for category in ["encryption", "backups", "rbac", "disasterRecovery"] {
        let n = rules.values().filter(|m| m["category"] == category).count();
        assert!(n >= 6, "{category} has {n} rules, expected at least 6");
    }
}
