//! `CRMRiskReport` (namespaced): the risk of one workload, written by the operator, one per
//! workload (owned by the workload, so it goes away with it), read by users and dashboards.
//!
//! The content lives in `spec` although the operator writes it: there is no user intent to
//! separate from it, and `kubectl get crr` can then print score and band directly.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{Band, WorkloadKind};
use crate::risk::ScoredFinding;

/// At most this many findings are stored per report; the summary still counts all of them. A
/// workload rarely has more than a few dozen findings; the cap keeps a report far below the
/// apiserver's object size limit (about 1.5 MiB) whatever a custom policy emits.
pub const REPORT_FINDINGS_CAP: usize = 200;

/// Longest object name the apiserver accepts for a custom resource (a DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// The risk of one workload as assessed by every CRMRiskPolicy that matches it. Written by the
/// operator; edits are overwritten.
// One `printcolumn(...)` per column repeats `type_ = ...`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "crmrisk.io",
    version = "v1alpha1",
    kind = "CRMRiskReport",
    plural = "crmriskreports",
    singular = "crmriskreport",
    namespaced,
    shortname = "crr",
    category = "crmrisk",
    derive = "PartialEq",
    doc = "CRMRiskReport is the risk of one workload as assessed by every CRMRiskPolicy that matches it. Written by the operator.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.workload.kind"),
    printcolumn(name = "Workload", type_ = "string", json_path = ".spec.workload.name"),
    printcolumn(name = "Score", type_ = "integer", json_path = ".spec.score"),
    printcolumn(name = "Band", type_ = "string", json_path = ".spec.band"),
    printcolumn(name = "Acceptable", type_ = "boolean", json_path = ".spec.acceptable"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CRMRiskReportSpec {
    /// The workload this report is about (in the report's namespace).
    pub workload: ReportWorkloadRef,
    /// Each policy that matches the workload, with the workload's score under it.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub policies: Vec<ReportPolicy>,
    /// Highest score of any unaccepted finding, 0-25 (0: none).
    #[schemars(range(max = 25))]
    pub score: u8,
    /// Band of `score`.
    pub band: Band,
    /// True when every policy finds the workload acceptable (no unaccepted finding at or above
    /// its tolerance).
    pub acceptable: bool,
    /// The findings, unaccepted first and highest score first, at most 200 (see
    /// `findingsOmitted`).
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub findings: Vec<ReportFinding>,
    /// How many findings were left out of `findings` because of the cap. The summary counts
    /// them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub findings_omitted: u32,
    /// Finding counts: unaccepted findings per band, and accepted findings.
    #[serde(default)]
    pub summary: ReportSummary,
    /// When the workload was last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluated: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl CRMRiskReportSpec {
    /// Stores `findings`: counts them all into `summary`, keeps the [`REPORT_FINDINGS_CAP`]
    /// most relevant (unaccepted first, then highest score, then policy and id, for a stable
    /// order) and records how many were left out.
    pub fn set_findings(&mut self, mut findings: Vec<ReportFinding>) {
        self.summary = ReportSummary::count(findings.iter().map(|f| &f.finding));
        findings.sort_by(|a, b| {
            a.finding
                .accepted
                .cmp(&b.finding.accepted)
                .then(b.finding.score.cmp(&a.finding.score))
                .then_with(|| a.policy.cmp(&b.policy))
                .then_with(|| a.finding.id.cmp(&b.finding.id))
                .then_with(|| a.finding.message.cmp(&b.finding.message))
        });
        let omitted = findings.len().saturating_sub(REPORT_FINDINGS_CAP);
        findings.truncate(REPORT_FINDINGS_CAP);
        self.findings = findings;
        self.findings_omitted = u32::try_from(omitted).unwrap_or(u32::MAX);
    }
}

/// The workload a report is about.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportWorkloadRef {
    /// `apps/v1` or `batch/v1`.
    pub api_version: String,
    /// Workload kind.
    pub kind: WorkloadKind,
    /// Workload name.
    pub name: String,
    /// Workload UID, so that a report never describes a re-created workload of the same name.
    pub uid: String,
}

impl ReportWorkloadRef {
    /// A reference with the API version that goes with `kind`.
    pub fn new(kind: WorkloadKind, name: impl Into<String>, uid: impl Into<String>) -> Self {
        Self { api_version: kind.api_version().to_string(), kind, name: name.into(), uid: uid.into() }
    }
}

/// The workload's standing under one policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportPolicy {
    /// CRMRiskPolicy name.
    pub name: String,
    /// The policy's tolerance, as used for this report.
    pub risk_tolerance: u8,
    /// Highest score of any unaccepted finding of this policy, 0-25.
    pub score: u8,
    /// Band of `score`.
    pub band: Band,
    /// True when no unaccepted finding reaches the tolerance.
    pub acceptable: bool,
}

/// One finding, with the policy that produced it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportFinding {
    /// The CRMRiskPolicy that produced the finding.
    pub policy: String,
    /// The finding itself; its fields appear beside `policy`.
    #[serde(flatten)]
    pub finding: ScoredFinding,
}

impl ReportFinding {
    /// `finding` as produced by policy `policy`.
    pub fn new(policy: impl Into<String>, finding: ScoredFinding) -> Self {
        Self { policy: policy.into(), finding }
    }
}

/// Finding counts of a report.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ReportSummary {
    /// Unaccepted critical findings (score 20-25).
    pub critical: u32,
    /// Unaccepted high findings (score 10-16).
    pub high: u32,
    /// Unaccepted medium findings (score 5-9).
    pub medium: u32,
    /// Unaccepted low findings (score 1-4).
    pub low: u32,
    /// Findings accepted by a CRMRiskException, whatever their band.
    pub accepted: u32,
}

impl ReportSummary {
    /// Counts `findings`.
    pub fn count<'a>(findings: impl IntoIterator<Item = &'a ScoredFinding>) -> Self {
        let mut s = Self::default();
        for f in findings {
            let slot = if f.accepted {
                &mut s.accepted
            } else {
                match f.band {
                    Band::Critical => &mut s.critical,
                    Band::High => &mut s.high,
                    Band::Medium => &mut s.medium,
                    Band::Low | Band::None => &mut s.low,
                }
            };
            *slot = slot.saturating_add(1);
        }
        s
    }
}

/// The name of the report for a workload: `<kind>-<name>` in lower case (`statefulset-crm-db`).
/// Names too long for the apiserver are cut and suffixed with a hash of the full name, so they
/// stay unique and stable.
pub fn report_name(kind: WorkloadKind, workload_name: &str) -> String {
    let full = format!("{}-{}", kind.as_str().to_ascii_lowercase(), workload_name);
    if full.len() <= MAX_NAME_LEN {
        return full;
    }
    let hash = format!("{:016x}", fnv1a(full.as_bytes()));
    let suffix = &hash[..10];
    let mut cut = MAX_NAME_LEN - suffix.len() - 1;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = full[..cut].trim_end_matches(['-', '.']);
    format!("{prefix}-{suffix}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Category, Control};
    use crate::risk::Evidence;

    fn finding(id: &str, score: u8, accepted: bool) -> ScoredFinding {
        ScoredFinding {
            id: id.into(),
            title: "t".into(),
            category: Category::Backups,
            control: Control::Recovery,
            likelihood: 1,
            impact: score,
            score,
            band: Band::of(score),
            accepted,
            accepted_by: accepted.then(|| "crm/ex".to_string()),
            message: format!("{id} message"),
            remediation: "".into(),
            evidence: vec![Evidence {
                kind: "PersistentVolumeClaim".into(),
                namespace: Some("crm".into()),
                name: "data".into(),
            }],
        }
    }

    fn spec() -> CRMRiskReportSpec {
        CRMRiskReportSpec {
            workload: ReportWorkloadRef::new(WorkloadKind::StatefulSet, "crm-db", "uid-1"),
            policies: vec![],
            score: 0,
            band: Band::None,
            acceptable: true,
            findings: vec![],
            findings_omitted: 0,
            summary: ReportSummary::default(),
            last_evaluated: None,
        }
    }

    #[test]
    fn findings_serialize_flat_with_their_policy() {
        let f = ReportFinding::new("baseline", finding("BKP-001", 20, false));
        let v = serde_json::to_value(&f).expect("serializes");
        assert_eq!(v["policy"], "baseline");
        assert_eq!(v["id"], "BKP-001");
        assert_eq!(v["band"], "critical");
        assert_eq!(v["category"], "backups");
        assert_eq!(v["evidence"][0]["kind"], "PersistentVolumeClaim");
        assert!(v.get("finding").is_none());
        let back: ReportFinding = serde_json::from_value(v).expect("round-trips");
        assert_eq!(back, f);
    }

    #[test]
    fn set_findings_counts_all_sorts_and_caps() {
        let mut s = spec();
        let mut findings = vec![
            ReportFinding::new("p", finding("A", 25, true)),
            ReportFinding::new("p", finding("B", 12, false)),
            ReportFinding::new("p", finding("C", 6, false)),
        ];
        for i in 0..REPORT_FINDINGS_CAP {
            findings.push(ReportFinding::new("q", finding(&format!("L-{i:03}"), 2, false)));
        }
        s.set_findings(findings);
        assert_eq!(s.findings.len(), REPORT_FINDINGS_CAP);
        assert_eq!(s.findings_omitted, 3);
        assert_eq!(s.findings[0].finding.id, "B");
        assert_eq!(s.findings[1].finding.id, "C");
        assert!(s.findings.iter().all(|f| !f.finding.accepted));
        assert_eq!(s.summary, ReportSummary { critical: 0, high: 1, medium: 1, low: 200, accepted: 1 });
    }

    #[test]
    fn spec_round_trips_with_camel_case_names() {
        let mut s = spec();
        s.set_findings(vec![ReportFinding::new("p", finding("B", 12, false))]);
        s.policies.push(ReportPolicy {
            name: "p".into(),
            risk_tolerance: 10,
            score: 12,
            band: Band::High,
            acceptable: false,
        });
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(
            v["workload"],
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "crm-db", "uid": "uid-1"})
        );
        assert_eq!(v["policies"][0]["riskTolerance"], 10);
        assert!(v.get("findingsOmitted").is_none());
        let back: CRMRiskReportSpec = serde_json::from_value(v).expect("round-trips");
        assert_eq!(back, s);
    }

    #[test]
    fn report_names_are_short_stable_and_unique() {
        assert_eq!(report_name(WorkloadKind::StatefulSet, "crm-db"), "statefulset-crm-db");
        assert_eq!(report_name(WorkloadKind::CronJob, "nightly"), "cronjob-nightly");
        let long_a = format!("{}a", "x".repeat(250));
        let long_b = format!("{}b", "x".repeat(250));
        let a = report_name(WorkloadKind::Deployment, &long_a);
        let b = report_name(WorkloadKind::Deployment, &long_b);
        assert!(a.len() <= MAX_NAME_LEN && b.len() <= MAX_NAME_LEN);
        assert_ne!(a, b);
        assert_eq!(a, report_name(WorkloadKind::Deployment, &long_a));
        // The cut falls right after the dot: it must not end the prefix.
        let dotted = format!("{}.{}", "y".repeat(230), "z".repeat(30));
        let d = report_name(WorkloadKind::Deployment, &dotted);
        assert!(!d.contains(".-"), "{d}");
        assert!(d.starts_with(&format!("deployment-{}-", "y".repeat(230))), "{d}");
    }
}
