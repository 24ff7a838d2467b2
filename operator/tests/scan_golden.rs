//! Golden tests of `crmrisk scan` over the examples, and of the `crmrisk` binary itself.
//!
//! The JSON report of each example scan is compared with `tests/golden/<name>.json`. Sources are
//! made relative to the repository root and `now` is fixed, so the files do not depend on the
//! checkout or the date. After an intended change of rules, messages or examples, rewrite them
//! with `UPDATE_GOLDEN=1 cargo test -p crmrisk --test scan_golden` and review the diff.
//!
//! Beside the byte-for-byte comparison, each example has facts asserted directly (risky is above
//! tolerance in all four areas, hardened is acceptable), so regenerating a golden file cannot
//! quietly bless a regression.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crmrisk::model::Category;
use crmrisk::scan::output::{Format, render};
use crmrisk::scan::{Outcome, ScanOptions, ScanReport, scan};
use serde_json::Value;

/// The moment every golden scan runs at (only exception expiry depends on it).
const NOW: &str = "2026-01-15T12:00:00Z";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Scan paths given relative to the repository root (passed on as absolute paths, so the
/// normalization below is exercised).
fn scan_example(inputs: &[&str], policies: &[&str]) -> ScanReport {
    let root = repo_root();
    scan(&ScanOptions {
        inputs: inputs.iter().map(|p| root.join(p)).collect(),
        policies: policies.iter().map(|p| root.join(p)).collect(),
        now: Some(NOW.parse().expect("valid timestamp")),
        ..ScanOptions::default()
    })
}

/// Rewrite every `source` string that starts with the repository root to a relative path.
fn relativize_sources(value: &mut Value, root: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "source" => {
                        if let Some(rest) = s.strip_prefix(root) {
                            *s = rest.trim_start_matches('/').to_owned();
                        }
                    }
                    _ => relativize_sources(v, root),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| relativize_sources(v, root)),
        _ => {}
    }
}

/// The report as `-o json` prints it, with sources relative to the repository root.
fn normalized_json(report: &ScanReport) -> String {
    let mut value: Value = serde_json::from_str(&render(report, Format::Json)).expect("-o json is JSON");
    relativize_sources(&mut value, &repo_root().display().to_string());
    serde_json::to_string_pretty(&value).expect("JSON value serializes") + "\n"
}

/// A line diff (longest common subsequence), showing at most `max` changed lines with their line
/// numbers in the expected (`-`) and actual (`+`) text.
fn line_diff(expected: &str, actual: &str, max: usize) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut shown, mut changed) = (0, 0, 0, 0);
    let mut out = String::new();
    let mut emit = |line: String, out: &mut String| {
        changed += 1;
        if shown < max {
            out.push_str(&line);
            out.push('\n');
            shown += 1;
        }
    };
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            emit(format!("-{:>5}: {}", i + 1, a[i]), &mut out);
            i += 1;
        } else {
            emit(format!("+{:>5}: {}", j + 1, b[j]), &mut out);
            j += 1;
        }
    }
    if changed > shown {
        out.push_str(&format!("... and {} more changed line(s)\n", changed - shown));
    }
    out
}

/// Compare `actual` with the golden file `name`, or rewrite it when `UPDATE_GOLDEN` is set.
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(golden_dir()).expect("create tests/golden");
        std::fs::write(&path, actual).expect("write golden file");
        eprintln!("updated {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); create it with UPDATE_GOLDEN=1 cargo test -p crmrisk --test scan_golden",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "scan output differs from {} (- golden, + actual):\n{}\nIf the change is intended, rewrite the file with \
             UPDATE_GOLDEN=1 cargo test -p crmrisk --test scan_golden and review the diff.",
            path.display(),
            line_diff(&expected, actual, 40)
        );
    }
}

/// The workloads not acceptable, with the unaccepted findings at or above tolerance, for
/// assertion messages.
fn above_tolerance(report: &ScanReport) -> Vec<String> {
    report
        .workloads
        .iter()
        .filter(|w| !w.acceptable)
        .map(|w| {
            let ids: Vec<_> =
                w.findings.iter().filter(|f| f.above_tolerance && !f.accepted).map(|f| f.id.as_str()).collect();
            format!("{} {}/{} ({})", w.kind, w.namespace, w.name, ids.join(", "))
        })
        .collect()
}

#[test]
fn risky_example_matches_golden_and_is_above_tolerance_in_every_area() {
    let report = scan_example(&["examples/risky"], &[]);
    // Golden first, so UPDATE_GOLDEN=1 rewrites it even while a fact below fails.
    check_golden("risky.json", &normalized_json(&report));
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert_eq!(report.outcome(), Outcome::AboveTolerance);
    assert_eq!(report.outcome() as u8, 1);
    let names: Vec<_> = report.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["crm-cache", "crm-web", "crm-db"], "workloads, sorted by namespace, kind and name");
    assert!(report.workloads.iter().all(|w| !w.acceptable), "every risky workload is at risk: {names:?}");
    let categories: BTreeSet<Category> =
        report.workloads.iter().flat_map(|w| &w.findings).filter(|f| f.above_tolerance).map(|f| f.category).collect();
    for c in Category::BUILT_IN {
        assert!(categories.contains(&c), "no finding above tolerance in {c}; found {categories:?}");
    }
    for f in report.workloads.iter().flat_map(|w| &w.findings) {
        let source = f.source.as_deref().unwrap_or_default();
        assert!(source.contains("examples/risky/crm.yaml#"), "{} has source {source:?}", f.id);
    }
}

#[test]
fn hardened_example_matches_golden_and_is_acceptable() {
    let report = scan_example(&["examples/hardened"], &[]);
    check_golden("hardened.json", &normalized_json(&report));
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert_eq!(report.workloads.len(), 3, "the hardened stack has three workloads");
    assert_eq!(
        report.outcome(),
        Outcome::Acceptable,
        "hardened example must be within tolerance; above it: {:?}",
        above_tolerance(&report)
    );
}

#[test]
fn risky_example_with_example_policies_matches_golden() {
    let report = scan_example(
        &["examples/risky"],
        &["examples/policies/crm-baseline.yaml", "examples/policies/crm-image-hygiene.yaml"],
    );
    check_golden("risky-example-policies.json", &normalized_json(&report));
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    for w in &report.workloads {
        let policies: Vec<_> = w.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(policies, ["crm-baseline", "crm-image-hygiene"], "{} matched by both policies", w.name);
    }
    assert_eq!(report.outcome(), Outcome::AboveTolerance);
}

#[test]
fn golden_normalization_strips_the_repository_root() {
    let root = repo_root().display().to_string();
    let mut v = serde_json::json!({"a": [{"source": format!("{root}/examples/x.yaml#3"), "other": format!("{root}/y")}],
        "source": "<stdin>#0"});
    relativize_sources(&mut v, &root);
    assert_eq!(v["a"][0]["source"], "examples/x.yaml#3");
    assert_eq!(v["a"][0]["other"], format!("{root}/y"), "only `source` fields are rewritten");
    assert_eq!(v["source"], "<stdin>#0");
}

#[test]
fn line_diff_names_changed_lines() {
    let d = line_diff("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n", 10);
    assert_eq!(d, "-    2: b\n+    2: B\n+    5: e\n");
    let d = line_diff("1\n2\n3\n", "x\ny\nz\n", 2);
    assert!(d.ends_with("... and 4 more changed line(s)\n"), "{d}");
}

// ---- the binary ----------------------------------------------------------------------------

fn crmrisk(args: &[&str]) -> Output {
    crmrisk_with_stdin(args, None)
}

fn crmrisk_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmrisk"))
        .args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crmrisk");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin is piped").write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("crmrisk finishes")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch directory of this test (under cargo's per-target temporary directory).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scan_golden-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[test]
fn binary_exits_1_above_tolerance_and_0_within() {
    let out = crmrisk(&["scan", "-f", "examples/risky"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 workload(s) scanned, 3 above tolerance"), "{}", describe(&out));

    // The same workloads under a policy whose every area is off: nothing to report.
    let dir = scratch("exit0");
    let policy = dir.join("off.yaml");
    std::fs::write(
        &policy,
        "apiVersion: crmrisk.io/v1alpha1\nkind: CRMRiskPolicy\nmetadata: {name: all-off}\nspec:\n  checks:\n    \
         encryption: {enabled: false}\n    backups: {enabled: false}\n    rbac: {enabled: false}\n    \
         disasterRecovery: {enabled: false}\n",
    )
    .unwrap();
    let out = crmrisk(&["scan", "-f", "examples/risky", "-p", policy.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("-o json is JSON");
    assert_eq!(report["workloads"].as_array().map(Vec::len), Some(3), "{report}");
    assert!(report["workloads"].as_array().unwrap().iter().all(|w| w["acceptable"] == true), "{report}");
}

#[test]
fn binary_exits_2_on_a_malformed_document_naming_file_and_index() {
    let dir = scratch("exit2");
    let file = dir.join("broken.yaml");
    let risky = std::fs::read_to_string(repo_root().join("examples/risky/crm.yaml")).unwrap();
    // Document 0 is fine, document 1 is not YAML, the risky stack follows.
    std::fs::write(
        &file,
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: ok}}\n---\nkind: [unclosed\n---\n{risky}"),
    )
    .unwrap();
    let file_str = file.to_str().unwrap();
    for format in ["table", "json"] {
        let out = crmrisk(&["scan", "-f", file_str, "-o", format]);
        assert_eq!(out.status.code(), Some(2), "-o {format}: {}", describe(&out));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(all.contains(&format!("{file_str}#1")), "-o {format} names the file and document: {}", describe(&out));
        // Everything readable is still reported.
        assert!(all.contains("crm-db"), "-o {format} still reports the other documents: {}", describe(&out));
    }
    let out = crmrisk(&["scan", "-f", file_str, "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("-o json is JSON even with errors");
    assert_eq!(report["errors"][0]["source"], format!("{file_str}#1"), "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{file_str}#1")), "{}", describe(&out));

    // A missing file is an input error too.
    let out = crmrisk(&["scan", "-f", dir.join("missing.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn binary_sarif_is_sarif_2_1_0_with_results() {
    let out = crmrisk(&["scan", "-f", "examples/risky", "-o", "sarif"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("-o sarif is JSON");
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "crmrisk");
    let results = run["results"].as_array().expect("results array");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules array");
    assert!(!results.is_empty(), "{sarif}");
    for r in results {
        let id = r["ruleId"].as_str().expect("ruleId");
        let index = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index]["id"], id, "ruleIndex points at the rule");
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap_or_default()), "{r}");
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap_or_default();
        assert_eq!(uri, "examples/risky/crm.yaml", "{r}");
    }
    assert!(results.iter().any(|r| r["level"] == "error"), "findings above tolerance are errors");
}

#[test]
fn binary_junit_has_one_failure_per_workload_above_tolerance() {
    let report = scan_example(&["examples/risky"], &[]);
    let expected = report.workloads.iter().filter(|w| !w.acceptable).count();
    let out = crmrisk(&["scan", "-f", "examples/risky", "-o", "junit"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), report.workloads.len(), "{xml}");
    assert_eq!(xml.matches("<failure ").count(), expected, "{xml}");
    assert!(xml.contains(&format!("failures=\"{expected}\"")), "{xml}");
    for w in report.workloads.iter().filter(|w| !w.acceptable) {
        assert!(xml.contains(&format!("{} {}/{}", w.kind, w.namespace, w.name)), "{} in {xml}", w.name);
    }
}

#[test]
fn binary_reads_stdin() {
    let risky = std::fs::read(repo_root().join("examples/risky/crm.yaml")).unwrap();
    let out = crmrisk_with_stdin(&["scan", "-f", "-", "-o", "json"], Some(&risky));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("-o json is JSON");
    let workloads = report["workloads"].as_array().expect("workloads");
    assert_eq!(workloads.len(), 3, "{report}");
    let source = workloads[0]["findings"][0]["source"].as_str().unwrap_or_default();
    assert!(source.starts_with("<stdin>#"), "source {source:?}");
}

#[test]
fn binary_crd_prints_three_crds() {
    let out = crmrisk(&["crd"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("each document is YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect();
    assert_eq!(docs.len(), 3, "{text}");
    let mut names: Vec<&str> = docs
        .iter()
        .map(|d| {
            assert_eq!(d["kind"], "CustomResourceDefinition");
            assert_eq!(d["apiVersion"], "apiextensions.k8s.io/v1");
            d["metadata"]["name"].as_str().unwrap_or_default()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["crmriskexceptions.crmrisk.io", "crmriskpolicies.crmrisk.io", "crmriskreports.crmrisk.io"]);
}

#[test]
fn binary_test_passes_on_the_policy_library() {
    let out = crmrisk(&["test", "policies/"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}
