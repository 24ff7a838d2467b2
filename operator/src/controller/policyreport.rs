//! Reports for the dashboards teams already run: when the `wgpolicyk8s.io` PolicyReport or the
//! `openreports.io` Report CRD is installed, one such report per workload, scoped to the
//! Deployment/StatefulSet itself (never its ReplicaSet, so rollouts leave nothing stale), owned
//! by it, with a constant `source` and string `properties`. Policy Reporter then shows our
//! findings with no adapter.

use std::collections::BTreeMap;

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::reports::{MANAGED_BY, PolicyAssessment};
use crate::context::Workload;
use crate::model::Band;

/// `source` of every result.
pub const SOURCE: &str = "crm-risk-operator";
/// Results per report, far below the object size limit.
pub const RESULTS_CAP: usize = 100;

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    WgPolicy,
    OpenReports,
}

impl Format {
    pub fn api_resource(self) -> ApiResource {
        match self {
            Format::WgPolicy => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
                "policyreports",
            ),
            Format::OpenReports => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("openreports.io", "v1alpha1", "Report"),
                "reports",
            ),
        }
    }
}

fn severity(band: Band) -> &'static str {
    match band {
        Band::Critical => "critical",
        Band::High => "high",
        Band::Medium => "medium",
        Band::Low => "low",
        Band::None => "info",
    }
}

/// The report's name: `crmrisk-<kind>-<workload>` (lowercase, capped like CRMRiskReports).
pub fn name(workload: &Workload) -> String {
    format!("crmrisk-{}", crate::api::report_name(workload.kind, workload.name()))
}

/// The desired report (as JSON), or `None` when no policy matches the workload.
pub fn desired(
    format: Format,
    workload: &Workload,
    by_policy: &BTreeMap<String, PolicyAssessment>,
    now_seconds: i64,
) -> Option<Value> {
    if by_policy.is_empty() {
        return None;
    }
    let uid = workload.uid()?.to_owned();
    let r = workload.reference();
    let mut results = Vec::new();
    let mut summary: BTreeMap<&str, u64> =
        ["pass", "fail", "warn", "error", "skip"].into_iter().map(|k| (k, 0)).collect();
    for (policy, pa) in by_policy {
        if pa.assessment.findings.is_empty() {
            *summary.entry("pass").or_default() += 1;
            results.push(json!({
                "source": SOURCE, "policy": policy, "rule": "all-checks", "result": "pass",
                "message": format!("{} {} has no finding under policy {policy}", r.kind, r.name),
                "timestamp": {"seconds": now_seconds, "nanos": 0}, "scored": true,
                "properties": {"score": "0", "resultID": format!("{policy}/{}/{}/{}/pass", r.kind, r.namespace, r.name)}
            }));
            continue;
        }
        for f in &pa.assessment.findings {
            let result = if f.accepted {
                "skip"
            } else if f.score >= pa.tolerance {
                "fail"
            } else {
                "warn"
            };
            *summary.entry(result).or_default() += 1;
            let mut properties = json!({
                "likelihood": f.likelihood.to_string(),
                "impact": f.impact.to_string(),
                "score": f.score.to_string(),
                "band": f.band.as_str(),
                "control": f.control.as_str(),
                "riskTolerance": pa.tolerance.to_string(),
                "resultID": format!("{policy}/{}/{}/{}/{}", r.kind, r.namespace, r.name, f.id),
            });
            if let Some(by) = &f.accepted_by {
                properties["acceptedBy"] = json!(by);
            }
            results.push(json!({
                "source": SOURCE, "policy": policy, "rule": f.id, "result": result,
                "severity": severity(f.band), "category": f.category.as_str(),
                "message": f.message, "timestamp": {"seconds": now_seconds, "nanos": 0}, "scored": true,
                "properties": properties,
            }));
        }
    }
    // Most severe first, then cap.
    let rank = |v: &Value| match v["result"].as_str() {
        Some("fail") => 0,
        Some("warn") => 1,
        Some("skip") => 2,
        _ => 3,
    };
    results.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| {
            let s = |v: &Value| v["properties"]["score"].as_str().and_then(|s| s.parse::<u8>().ok()).unwrap_or(0);
            s(b).cmp(&s(a))
        })
    });
    results.truncate(RESULTS_CAP);
    let ar = format.api_resource();
    Some(json!({
        "apiVersion": ar.api_version,
        "kind": ar.kind,
        "metadata": {
            "name": name(workload),
            "namespace": r.namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1, "crmrisk.io/workload-kind": r.kind.as_str()},
            "ownerReferences": [{
                "apiVersion": r.kind.api_version(), "kind": r.kind.as_str(), "name": r.name, "uid": uid, "controller": true
            }]
        },
        "scope": {"apiVersion": r.kind.api_version(), "kind": r.kind.as_str(), "name": r.name, "namespace": r.namespace, "uid": uid},
        "summary": summary,
        "results": results,
    }))
}

/// Whether the cluster's report already says what `desired` says (timestamps do not count).
pub fn same(existing: &DynamicObject, desired: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut results = v.get("results").cloned().unwrap_or(Value::Null);
        if let Some(list) = results.as_array_mut() {
            for r in list {
                if let Some(o) = r.as_object_mut() {
                    o.remove("timestamp");
                }
            }
        }
        json!({"results": results, "summary": v.get("summary"), "scope": v.get("scope")})
    };
    strip(&existing.data) == strip(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::Assessment;
    use crate::model::{Category, Control, WorkloadKind};
    use crate::risk::{ScoredFinding, Verdict};

    fn workload() -> Workload {
        let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
            "metadata": {"name": "crm-web", "namespace": "crm", "uid": "u-1"},
            "spec": {"selector": {}, "template": {"spec": {"containers": []}}}
        }))
        .unwrap();
        Workload::from_deployment(&d).unwrap()
    }

    fn finding(id: &str, score: u8, accepted: bool) -> ScoredFinding {
        ScoredFinding {
            id: id.into(),
            title: "t".into(),
            category: Category::Backups,
            control: Control::Recovery,
            likelihood: 4,
            impact: score / 4,
            score,
            band: Band::of(score),
            accepted,
            accepted_by: accepted.then(|| "crm/ex".to_owned()),
            message: "m".into(),
            remediation: "".into(),
            evidence: vec![],
        }
    }

    #[test]
    fn results_are_scoped_to_the_workload_with_string_properties() {
        let w = workload();
        let a = Assessment {
            workload: w.reference(),
            policy: "p".into(),
            findings: vec![finding("BKP-001", 20, false), finding("DR-002", 8, false), finding("ENC-004", 16, true)],
            verdict: Verdict { score: 20, band: Band::Critical, acceptable: false, accepted_above_tolerance: 1 },
            warnings: vec![],
        };
        let by_policy = BTreeMap::from([("p".to_owned(), PolicyAssessment { tolerance: 10, assessment: a })]);
        let r = desired(Format::WgPolicy, &w, &by_policy, 100).unwrap();
        assert_eq!(r["kind"], "PolicyReport");
        assert_eq!(r["scope"]["kind"], "Deployment");
        assert_eq!(r["scope"]["name"], "crm-web");
        assert_eq!(r["summary"]["fail"], 1);
        assert_eq!(r["summary"]["warn"], 1);
        assert_eq!(r["summary"]["skip"], 1);
        let first = &r["results"][0];
        assert_eq!(
            (first["rule"].as_str(), first["result"].as_str(), first["severity"].as_str()),
            (Some("BKP-001"), Some("fail"), Some("critical"))
        );
        assert_eq!(first["source"], SOURCE);
        assert_eq!(first["properties"]["score"], "20");
        assert_eq!(first["properties"]["resultID"], "p/Deployment/crm/crm-web/BKP-001");
        // Only timestamps differ: same content.
        let later = desired(Format::WgPolicy, &w, &by_policy, 999).unwrap();
        let existing: DynamicObject = serde_json::from_value(r.clone()).unwrap();
        assert!(same(&existing, &later));
        let open = desired(Format::OpenReports, &w, &by_policy, 100).unwrap();
        assert_eq!(
            (open["apiVersion"].as_str(), open["kind"].as_str()),
            (Some("openreports.io/v1alpha1"), Some("Report"))
        );
        assert_eq!(WorkloadKind::Deployment.as_str(), r["metadata"]["ownerReferences"][0]["kind"]);
    }
}
