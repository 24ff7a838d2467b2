//! Printing a [`ScanReport`]: a table for people, JSON for tools, SARIF for code scanning
//! (GitHub, GitLab), JUnit for CI test reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;

use super::{FindingResult, ScanReport};

/// Output formats of `crmrisk scan -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Sarif,
    Junit,
}

/// Render the report in `format`.
pub fn render(report: &ScanReport, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif(report)).unwrap_or_default() + "\n",
        Format::Junit => junit(report),
    }
}

/// Findings shown per workload in the table; the rest are counted.
const TABLE_FINDINGS: usize = 5;

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

/// A table: one line per workload, its top findings indented below.
pub fn table(report: &ScanReport) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 6]> = report
        .workloads
        .iter()
        .map(|w| {
            [
                w.kind.to_string(),
                w.namespace.clone(),
                w.name.clone(),
                w.score.to_string(),
                w.band.to_string(),
                yes_no(w.acceptable).to_owned(),
            ]
        })
        .collect();
    let header = ["KIND", "NAMESPACE", "NAME", "SCORE", "BAND", "ACCEPTABLE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
        }
        s.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header));
    for (w, row) in report.workloads.iter().zip(&rows) {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
        for f in w.findings.iter().take(TABLE_FINDINGS) {
            let mark = if f.accepted {
                "accepted"
            } else if f.above_tolerance {
                "!"
            } else {
                ""
            };
            let _ = writeln!(out, "    {:>2} {:<8} {:<9} {:<8} {}", f.score, f.band.to_string(), f.id, mark, f.message);
        }
        if w.findings.len() > TABLE_FINDINGS {
            let _ = writeln!(out, "    ... and {} more (-o json lists all)", w.findings.len() - TABLE_FINDINGS);
        }
    }
    let above = report.workloads.iter().filter(|w| !w.acceptable).count();
    let _ = writeln!(
        out,
        "\n{} workload(s) scanned, {} above tolerance, {} finding(s).",
        report.workloads.len(),
        above,
        report.workloads.iter().map(|w| w.findings.len()).sum::<usize>()
    );
    for e in &report.errors {
        let _ = writeln!(out, "error: {}: {}", e.source, e.message);
    }
    out
}

fn file_of(source: &Option<String>) -> String {
    source.as_deref().and_then(|s| s.rsplit_once('#').map(|(f, _)| f.to_owned())).unwrap_or_else(|| "<input>".into())
}

fn sarif_level(f: &FindingResult) -> &'static str {
    if f.above_tolerance {
        "error"
    } else if f.score >= 5 {
        "warning"
    } else {
        "note"
    }
}

/// SARIF 2.1.0: one rule per finding id, one result per finding; accepted findings carry an
/// external suppression so code scanning shows them as dismissed.
pub fn sarif(report: &ScanReport) -> serde_json::Value {
    let mut rules: BTreeMap<&str, &FindingResult> = BTreeMap::new();
    for f in report.workloads.iter().flat_map(|w| &w.findings) {
        rules.entry(&f.id).or_insert(f);
    }
    let rule_index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let rules_json: Vec<_> = rules
        .values()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.title,
                "shortDescription": {"text": f.title},
                "help": {"text": if f.remediation.is_empty() { f.title.clone() } else { f.remediation.clone() }},
                "properties": {"category": f.category, "control": f.control, "tags": [f.category.as_str(), f.control.as_str()]}
            })
        })
        .collect();
    let mut results = Vec::new();
    for w in &report.workloads {
        for f in &w.findings {
            let mut r = json!({
                "ruleId": f.id,
                "ruleIndex": rule_index.get(f.id.as_str()).copied().unwrap_or(0),
                "level": sarif_level(f),
                "message": {"text": format!("{} {}/{}: {} (score {} = likelihood {} x impact {}, {})",
                    w.kind, w.namespace, w.name, f.message, f.score, f.likelihood, f.impact, f.band)},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": file_of(&f.source)}, "region": {"startLine": 1}},
                    "logicalLocations": [{"name": w.name, "fullyQualifiedName": format!("{}/{}/{}", w.kind, w.namespace, w.name), "kind": "resource"}]
                }],
                "properties": {"policy": f.policy, "score": f.score, "band": f.band, "likelihood": f.likelihood, "impact": f.impact},
                "partialFingerprints": {"crmrisk/v1": format!("{}/{}/{}/{}/{}", f.policy, w.kind, w.namespace, w.name, f.id)}
            });
            if f.accepted {
                r["suppressions"] = json!([{"kind": "external", "justification": format!("accepted by CRMRiskException {}", f.accepted_by.clone().unwrap_or_default())}]);
            }
            results.push(r);
        }
    }
    let notifications: Vec<_> = report
        .errors
        .iter()
        .map(|e| json!({"level": "error", "message": {"text": format!("{}: {}", e.source, e.message)}}))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "crmrisk", "version": env!("CARGO_PKG_VERSION"), "rules": rules_json}},
            "results": results,
            "invocations": [{"executionSuccessful": report.errors.is_empty(), "toolExecutionNotifications": notifications}]
        }]
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JUnit XML: one test case per workload, failed when it is above tolerance; input errors are
/// errored test cases so CI shows them too.
pub fn junit(report: &ScanReport) -> String {
    let failures = report.workloads.iter().filter(|w| !w.acceptable).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"crmrisk\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        report.workloads.len() + report.errors.len(),
        failures,
        report.errors.len()
    );
    for w in &report.workloads {
        let name = xml_escape(&format!("{} {}/{}", w.kind, w.namespace, w.name));
        let _ = write!(out, "  <testcase classname=\"crmrisk.{}\" name=\"{}\">", xml_escape(&w.namespace), name);
        if !w.acceptable {
            let above: Vec<_> = w.findings.iter().filter(|f| f.above_tolerance && !f.accepted).collect();
            let _ = write!(out, "\n    <failure message=\"score {} ({}) is above tolerance\">", w.score, w.band);
            for f in above {
                let _ = write!(
                    out,
                    "\n{} [{}] score {}: {}",
                    xml_escape(&f.id),
                    xml_escape(&f.policy),
                    f.score,
                    xml_escape(&f.message)
                );
            }
            out.push_str("\n    </failure>\n  ");
        }
        out.push_str("</testcase>\n");
    }
    for e in &report.errors {
        let _ = writeln!(
            out,
            "  <testcase classname=\"crmrisk.input\" name=\"{}\"><error message=\"{}\"/></testcase>",
            xml_escape(&e.source),
            xml_escape(&e.message)
        );
    }
    out.push_str("</testsuite>\n");
    out
}
