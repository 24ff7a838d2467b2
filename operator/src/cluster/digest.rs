//! What the operator keeps of its own CRMRiskReports: enough to know whether a write would
//! change anything and what the last verdicts were, not the reports themselves (at 5,000
//! workloads, full copies would double the operator's memory).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use crate::api::{CRMRiskReport, CRMRiskReportSpec};

/// A digest of one CRMRiskReport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDigest {
    pub namespace: String,
    pub name: String,
    pub resource_version: Option<String>,
    /// Carries the operator's managed-by label.
    pub managed: bool,
    /// [`content_hash`] of the spec.
    pub content: u64,
    /// Each policy's verdict, to detect transitions after a restart.
    pub acceptable_by_policy: BTreeMap<String, bool>,
}

/// Hash of what a report says; the evaluation time does not count.
pub fn content_hash(spec: &CRMRiskReportSpec) -> u64 {
    let mut spec = spec.clone();
    spec.last_evaluated = None;
    let json = serde_json::to_string(&spec).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    h.finish()
}

impl ReportDigest {
    pub fn of(report: &CRMRiskReport, managed_by: (&str, &str)) -> ReportDigest {
        ReportDigest {
            namespace: report.metadata.namespace.clone().unwrap_or_default(),
            name: report.metadata.name.clone().unwrap_or_default(),
            resource_version: report.metadata.resource_version.clone(),
            managed: report.metadata.labels.as_ref().and_then(|l| l.get(managed_by.0)).map(String::as_str)
                == Some(managed_by.1),
            content: content_hash(&report.spec),
            acceptable_by_policy: report.spec.policies.iter().map(|p| (p.name.clone(), p.acceptable)).collect(),
        }
    }
}
