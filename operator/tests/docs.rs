//! The documentation in `docs/` stays true to the code:
//!
//! - `docs/rules.md` is generated from `policies/metadata.json` (through the engine's own
//!   [`RuleCatalog`]), and the generated blocks of `docs/risk-model.md` from the scoring code
//!   ([`Band::of`], [`impact_uplift`]). A test fails when they differ;
//!   `UPDATE_DOCS=1 cargo test -p crmrisk --test docs` rewrites them.
//! - Every `crmrisk ...` command in a code block parses with the real command line.
//! - Every `crmrisk_*` metric the docs name is one the operator exports.
//! - Relative links point at files that exist.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser as _;
use crmrisk::engine::{RuleCatalog, RuleMeta};
use crmrisk::model::{Band, BusinessImpact, Category, DataClassification, Objective, WorkloadKind, WorkloadRef};
use crmrisk::risk::impact_uplift;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn update() -> bool {
    std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1")
}

/// Compare `expected` with the file at `path` (rewriting it first with `UPDATE_DOCS=1`); the
/// failure names the first differing line.
fn check_generated(path: &Path, expected: &str) {
    if update() {
        std::fs::write(path, expected).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    if actual == expected {
        return;
    }
    let line = actual
        .lines()
        .zip(expected.lines())
        .position(|(a, e)| a != e)
        .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
    panic!(
        "{} is out of date (first difference at line {}):\n  on disk:  {:?}\n  expected: {:?}\n\
         Regenerate it with: UPDATE_DOCS=1 cargo test -p crmrisk --test docs",
        path.display(),
        line + 1,
        actual.lines().nth(line).unwrap_or("<end of file>"),
        expected.lines().nth(line).unwrap_or("<end of file>"),
    );
}

fn catalog() -> RuleCatalog {
    RuleCatalog::from_metadata_json(&read(&repo().join("policies/metadata.json"))).expect("metadata.json parses")
}

fn objective_name(o: Objective) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn category_heading(c: Category) -> &'static str {
    match c {
        Category::Encryption => "Encryption",
        Category::Backups => "Backups",
        Category::Rbac => "RBAC",
        Category::DisasterRecovery => "Disaster recovery",
        Category::Custom => "Custom",
    }
}

/// `ENC-010` sorts after `ENC-009` and `ENC-002`.
fn id_key(id: &str) -> (String, u32) {
    let (prefix, n) = id.rsplit_once('-').unwrap_or((id, "0"));
    (prefix.to_owned(), n.parse().unwrap_or(0))
}

fn anchor(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// The highest score a rule reaches once the workload's labels raise its impact, and the label
/// that does it.
fn max_with_uplift(meta: &RuleMeta) -> (u8, &'static str) {
    let uplift = impact_uplift(meta.objective, Some(DataClassification::Restricted), Some(BusinessImpact::Critical));
    let label = match meta.objective {
        Objective::Availability => "`crmrisk.io/business-impact: critical`",
        Objective::Confidentiality | Objective::Integrity => "`crmrisk.io/data-classification: restricted`",
    };
    (meta.likelihood * (meta.impact + uplift).min(5), label)
}

/// The text of docs/rules.md.
fn rules_md(catalog: &RuleCatalog) -> String {
    let mut by_category: Vec<(Category, Vec<(&String, &RuleMeta)>)> = Vec::new();
    for category in Category::BUILT_IN {
        let mut rules: Vec<_> = catalog.iter().filter(|(_, m)| m.category == category).collect();
        rules.sort_by_key(|(id, _)| id_key(id));
        by_category.push((category, rules));
    }
    let listed: usize = by_category.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(listed, catalog.len(), "every rule of metadata.json belongs to a built-in category");

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "<!-- Generated from policies/metadata.json by operator/tests/docs.rs. Do not edit:");
    let _ = writeln!(w, "     change metadata.json, then run UPDATE_DOCS=1 cargo test -p crmrisk --test docs -->");
    let _ = writeln!(w, "# Built-in rules\n");
    let _ = writeln!(
        w,
        "The {} rules of the Rego library that `crmrisk` embeds, by area. Each finding is scored \
         likelihood x impact (1-25); the impact shown is the rule's default, which the workload's \
         labels can raise (see [risk-model.md](risk-model.md)). A policy can turn any rule off or \
         change its likelihood and impact in `spec.checks.rules`; the parameters that govern \
         rules are listed in [policies/README.md](../policies/README.md#the-rules).\n",
        catalog.len()
    );
    let _ = writeln!(w, "| id | title | category | control | objective | likelihood x impact | score |");
    let _ = writeln!(w, "|---|---|---|---|---|---|---|");
    for (category, rules) in &by_category {
        for (id, m) in rules {
            let score = m.likelihood * m.impact;
            let _ = writeln!(
                w,
                "| [{id}](#{}) | {} | {} | {} | {} | {} x {} | {} ({}) |",
                anchor(id),
                m.title.replace('|', "\\|"),
                category.as_str(),
                m.control.as_str(),
                objective_name(m.objective),
                m.likelihood,
                m.impact,
                score,
                Band::of(score).as_str()
            );
        }
    }
    for (category, rules) in &by_category {
        let _ = writeln!(w, "\n## {}", category_heading(*category));
        for (id, m) in rules {
            let score = m.likelihood * m.impact;
            let (max, label) = max_with_uplift(m);
            let _ = writeln!(w, "\n<a id=\"{}\"></a>\n### {id}: {}\n", anchor(id), m.title);
            let _ = writeln!(
                w,
                "| category | control class | objective | default likelihood | default impact | default score |"
            );
            let _ = writeln!(w, "|---|---|---|---|---|---|");
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} ({}) |\n",
                category.as_str(),
                m.control.as_str(),
                objective_name(m.objective),
                m.likelihood,
                m.impact,
                score,
                Band::of(score).as_str()
            );
            if max > score {
                let _ = writeln!(w, "With {label} on the workload: up to {max} ({}).\n", Band::of(max).as_str());
            }
            let description = if m.description.is_empty() { "(no description)" } else { m.description.as_str() };
            let _ = writeln!(w, "**What it checks, and why.** {description}\n");
            let remediation = if m.remediation.is_empty() { "(none given)" } else { &*m.remediation };
            let _ = writeln!(w, "**Remediation.** {remediation}");
        }
    }
    out
}

#[test]
fn rules_md_is_generated_from_the_rule_metadata() {
    let catalog = catalog();
    assert!(catalog.len() >= 30, "the whole library: {}", catalog.len());
    let text = rules_md(&catalog);
    for (id, m) in catalog.iter() {
        assert!(text.contains(&format!("### {id}: {}", m.title)), "{id} has a section");
        assert!(
            !m.description.is_empty() && !m.remediation.is_empty(),
            "{id}: metadata lacks description or remediation"
        );
    }
    check_generated(&repo().join("docs/rules.md"), &text);
}

/// The band of every score, as ranges: `low 1-4, medium 5-9, ...` from [`Band::of`].
fn bands_block() -> String {
    let mut ranges: Vec<(Band, u8, u8)> = Vec::new();
    // Only products of two 1-5 factors occur.
    let possible: BTreeSet<u8> = (1..=5u8).flat_map(|l| (1..=5u8).map(move |i| l * i)).collect();
    for s in possible {
        match ranges.last_mut() {
            Some((band, _, hi)) if *band == Band::of(s) => *hi = s,
            _ => ranges.push((Band::of(s), s, s)),
        }
    }
    let mut out = String::from("| band | scores | which products of likelihood and impact |\n|---|---|---|\n");
    for (band, lo, hi) in ranges {
        let products: Vec<String> = (lo..=hi)
            .filter(|s| (1..=5u8).any(|l| s % l == 0 && (1..=5).contains(&(s / l))))
            .map(|s| s.to_string())
            .collect();
        let _ = writeln!(out, "| {} | {lo}-{hi} | {} |", band.as_str(), products.join(", "));
    }
    out
}

/// The impact uplift by objective and label value, from [`impact_uplift`].
fn uplift_block() -> String {
    let mut out = String::from("| rule objective | label | value | impact raised by |\n|---|---|---|---|\n");
    for objective in [Objective::Confidentiality, Objective::Integrity] {
        for (value, dc) in [
            ("public", DataClassification::Public),
            ("internal", DataClassification::Internal),
            ("confidential", DataClassification::Confidential),
            ("restricted", DataClassification::Restricted),
        ] {
            let up = impact_uplift(objective, Some(dc), Some(BusinessImpact::Critical));
            let _ =
                writeln!(out, "| {} | `{}` | `{value}` | {up} |", objective_name(objective), DataClassification::LABEL);
        }
    }
    for (value, bi) in [
        ("low", BusinessImpact::Low),
        ("medium", BusinessImpact::Medium),
        ("high", BusinessImpact::High),
        ("critical", BusinessImpact::Critical),
    ] {
        let up = impact_uplift(Objective::Availability, Some(DataClassification::Restricted), Some(bi));
        let _ = writeln!(
            out,
            "| {} | `{}` | `{value}` | {up} |",
            objective_name(Objective::Availability),
            BusinessImpact::LABEL
        );
    }
    out
}

/// Replace the body of every `<!-- BEGIN GENERATED: name -->` ... `<!-- END GENERATED: name -->`
/// block of `text` with `generate(name)`.
fn fill_blocks(text: &str, generate: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- BEGIN GENERATED: ") {
        let after = &rest[start..];
        let name_end = after.find(" -->").expect("BEGIN marker closed");
        let name = &after["<!-- BEGIN GENERATED: ".len()..name_end];
        let end_marker = format!("<!-- END GENERATED: {name} -->");
        let body_start = start + name_end + " -->".len();
        let end = rest[body_start..].find(&end_marker).unwrap_or_else(|| panic!("no {end_marker}")) + body_start;
        out.push_str(&rest[..body_start]);
        out.push('\n');
        out.push_str(&generate(name));
        out.push_str(&end_marker);
        rest = &rest[end + end_marker.len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn risk_model_tables_are_generated_from_the_scoring_code() {
    let path = repo().join("docs/risk-model.md");
    let text = read(&path);
    for block in ["bands", "uplift"] {
        assert!(text.contains(&format!("<!-- BEGIN GENERATED: {block} -->")), "risk-model.md has the {block} block");
    }
    let expected = fill_blocks(&text, |name| match name {
        "bands" => bands_block(),
        "uplift" => uplift_block(),
        other => panic!("unknown generated block {other}"),
    });
    check_generated(&path, &expected);
}

fn docs() -> Vec<(PathBuf, String)> {
    let dir = repo().join("docs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

/// Lines inside fenced code blocks, continuation lines joined.
fn code_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(lang) = t.strip_prefix("```") {
            fence = if fence.is_some() { None } else { Some(lang.trim().to_owned()) };
            continue;
        }
        if fence.is_some() {
            // A shell line continued with `\` goes on with the next one.
            match out.last_mut() {
                Some(prev) if prev.ends_with('\\') => {
                    prev.pop();
                    prev.push(' ');
                    prev.push_str(t);
                }
                _ => out.push(t.to_owned()),
            }
        }
    }
    out
}

/// The arguments of a `crmrisk ...` invocation on a shell line (up to a redirection, pipe or
/// comment), or None when the line does not run crmrisk.
fn crmrisk_args(line: &str) -> Option<Vec<String>> {
    let line = line.trim_start_matches("$ ").trim_start_matches("run: ").trim();
    if line.starts_with('#') {
        return None;
    }
    let start = line.find("crmrisk ")?;
    // `./crmrisk`, `target/release/crmrisk`, `docker run ... crmrisk` all count; `crmrisk_*` does not.
    if start > 0 && !line[..start].ends_with(['/', ' ', '(']) {
        return None;
    }
    let mut args = Vec::new();
    for word in line[start..].split_whitespace() {
        if ["|", "||", "&&", ">", "2>", ">>", "#", ";"].contains(&word) || word.starts_with('>') {
            break;
        }
        args.push(word.trim_matches(['"', '\'']).trim_end_matches(';').to_owned());
    }
    Some(args)
}

#[test]
fn crmrisk_commands_in_the_docs_parse() {
    let mut seen = 0;
    for (path, text) in docs() {
        for line in code_lines(&text) {
            let Some(args) = crmrisk_args(&line) else { continue };
            if args.len() < 2 || args[1].starts_with('-') && args[1] != "--help" {
                continue;
            }
            seen += 1;
            if let Err(e) = crmrisk::cli::Cli::try_parse_from(&args) {
                panic!("{}: `{line}` does not parse: {e}", path.display());
            }
        }
    }
    assert!(seen >= 5, "the docs show crmrisk commands ({seen})");
}

/// `/metrics` of a registry with every series populated.
fn populated_metrics() -> String {
    let m = crmrisk::telemetry::Metrics::new().unwrap();
    let mut snap = crmrisk::telemetry::PolicyMetricsSnapshot::default();
    snap.workload_scores
        .insert(WorkloadRef { kind: WorkloadKind::StatefulSet, namespace: "n".into(), name: "w".into() }, 20);
    snap.findings.insert((Category::Backups, Band::Critical), 1);
    snap.accepted.insert(Category::Rbac, 1);
    m.record_policy("p", &snap);
    m.set_policy_ready("p", true);
    m.observe_reconcile("p", Duration::from_millis(3));
    m.record_reconcile_error("p", "compile");
    m.observe_evaluation(Duration::from_micros(80));
    m.set_leader(true);
    m.render()
}

/// Metric families and series names the operator exports.
fn exported_metrics() -> BTreeSet<String> {
    let text = populated_metrics();
    let mut names: BTreeSet<String> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).map(str::to_owned).collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        names.insert(line.split(['{', ' ']).next().unwrap_or_default().to_owned());
    }
    names
}

/// The table of metrics in docs/operating.md: name, type, labels and help text, as registered.
fn metrics_block() -> String {
    let text = populated_metrics();
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# HELP ") else { continue };
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        let kind =
            text.lines().find_map(|l| l.strip_prefix(&format!("# TYPE {name} "))).unwrap_or("untyped").to_owned();
        let mut labels = BTreeSet::new();
        for series in text.lines().filter(|l| !l.starts_with('#')) {
            let series_name = series.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| series_name.strip_suffix(s).filter(|_| kind == "histogram"))
                .unwrap_or(series_name);
            if family != name {
                continue;
            }
            if let Some(set) = series.split_once('{').and_then(|(_, r)| r.split_once('}')).map(|(set, _)| set) {
                for pair in set.split(',').filter(|p| !p.is_empty()) {
                    let label = pair.split('=').next().unwrap_or_default();
                    if label != "le" {
                        labels.insert(format!("`{label}`"));
                    }
                }
            }
        }
        let labels = if labels.is_empty() { "-".to_owned() } else { labels.into_iter().collect::<Vec<_>>().join(", ") };
        let _ = writeln!(out, "| `{name}` | {kind} | {labels} | {} |", help.replace('|', "\\|"));
    }
    out
}

#[test]
fn operating_md_metrics_table_is_generated_from_the_registry() {
    let path = repo().join("docs/operating.md");
    let text = read(&path);
    assert!(text.contains("<!-- BEGIN GENERATED: metrics -->"), "operating.md has the metrics block");
    let expected = fill_blocks(&text, |name| match name {
        "metrics" => metrics_block(),
        other => panic!("unknown generated block {other}"),
    });
    check_generated(&path, &expected);
}

#[test]
fn metrics_named_in_the_docs_exist() {
    let exported = exported_metrics();
    for (path, text) in docs() {
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crmrisk_") {
            let tail = &rest[i..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            let name = &tail[..end];
            // A prefix written as `crmrisk_*` stands for all of them.
            if !name.ends_with('_') {
                assert!(exported.contains(name), "{} names {name}, which the operator does not export", path.display());
            }
            rest = &tail[end..];
        }
    }
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let docs_dir = repo().join("docs");
    for (path, text) in docs() {
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            let tail = &rest[i + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            let target = &tail[..end];
            rest = &tail[end..];
            if target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            assert!(docs_dir.join(file).exists(), "{}: link to {target}, which does not exist", path.display());
        }
    }
}

/// The code blocks of a doc that start with `# file: <name>`, as (name, text without that line).
fn file_blocks(text: &str) -> Vec<(String, String)> {
    enum State {
        Outside,
        FirstLine,
        Named(String, String),
        Other,
    }
    let mut out = Vec::new();
    let mut state = State::Outside;
    for line in text.lines() {
        let fence = line.trim_start().starts_with("```");
        state = match (state, fence) {
            (State::Outside, true) => State::FirstLine,
            (State::Outside, false) => State::Outside,
            (State::Named(name, body), true) => {
                out.push((name, body));
                State::Outside
            }
            (State::FirstLine | State::Other, true) => State::Outside,
            (State::FirstLine, false) => match line.strip_prefix("# file: ") {
                Some(name) => State::Named(name.trim().to_owned(), String::new()),
                None => State::Other,
            },
            (State::Named(name, mut body), false) => {
                body.push_str(line);
                body.push('\n');
                State::Named(name, body)
            }
            (State::Other, false) => State::Other,
        };
    }
    out
}

#[test]
fn the_worked_custom_rule_passes_its_tests_and_finds_what_the_docs_say() {
    let blocks = file_blocks(&read(&repo().join("docs/writing-policies.md")));
    let get = |name: &str| {
        blocks.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()).unwrap_or_else(|| panic!("no block {name}"))
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("docs-worked-example-{}", std::process::id()));
    let rego_dir = dir.join("residency");
    std::fs::create_dir_all(&rego_dir).unwrap();
    let module = get("data_residency.rego");
    std::fs::write(rego_dir.join("data_residency.rego"), &module).unwrap();
    std::fs::write(rego_dir.join("data_residency_test.rego"), get("data_residency_test.rego")).unwrap();

    // `crmrisk test residency/`
    let report = crmrisk::engine::testing::run_tests(&rego_dir, None).expect("the worked example compiles");
    assert!(report.total() >= 4, "tests found: {}", report.total());
    let failures: Vec<_> = report.failures().map(|r| format!("{}: {:?}", r.full_name(), r.error)).collect();
    assert!(failures.is_empty(), "failing tests in docs/writing-policies.md: {failures:?}");

    // The module inside the policy is the module that was tested.
    let policy_text = get("data-residency-policy.yaml");
    let policy: crmrisk::api::CRMRiskPolicy = serde_yaml_ng::from_str(&policy_text).expect("the policy parses");
    let inline = policy.spec.custom_policies[0].rego.as_deref().expect("inline rego");
    assert_eq!(inline.trim(), module.trim(), "the policy's module differs from data_residency.rego");
    let policy_file = dir.join("data-residency-policy.yaml");
    std::fs::write(&policy_file, &policy_text).unwrap();

    let scan = |manifest: PathBuf| {
        crmrisk::scan::scan(&crmrisk::scan::ScanOptions {
            inputs: vec![manifest],
            policies: vec![policy_file.clone()],
            ..Default::default()
        })
    };
    let hardened = repo().join("examples/hardened/crm.yaml");
    let eu = scan(hardened.clone());
    assert!(eu.errors.is_empty(), "{:?}", eu.errors);
    assert!(!eu.workloads.is_empty());
    assert!(eu.workloads.iter().all(|w| w.findings.is_empty()), "EU backups: no finding");

    let us_file = dir.join("crm-us.yaml");
    let text = read(&hardened);
    assert!(text.contains("eu-central-1"), "the hardened example backs up to eu-central-1");
    std::fs::write(&us_file, text.replace("eu-central-1", "us-east-1")).unwrap();
    let us = scan(us_file);
    assert!(us.errors.is_empty(), "{:?}", us.errors);
    for w in &us.workloads {
        let f = w.findings.iter().find(|f| f.id == "DATA-001");
        let f = f.unwrap_or_else(|| panic!("{}/{}: no DATA-001 with US backups", w.namespace, w.name));
        assert_eq!((f.score, f.above_tolerance), (15, true), "{}: score as the docs say", w.name);
        assert!(!w.acceptable);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
