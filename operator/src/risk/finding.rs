//! The finding as users see it: scored, banded, possibly accepted by an exception. The same
//! type appears in `crmrisk scan -o json`, in CRMRiskReports and in the policy status.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{Band, Category, Control};

/// An object a finding points at (a PVC, a StorageClass, a binding, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// One scored finding of one rule on one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoredFinding {
    /// Stable rule id, e.g. `BKP-001`.
    pub id: String,
    // Shared with the rule's metadata, so thousands of findings hold one copy.
    pub title: Arc<str>,
    pub category: Category,
    pub control: Control,
    /// 1-5.
    pub likelihood: u8,
    /// 1-5, after the uplift from the workload's data classification or business impact.
    pub impact: u8,
    /// likelihood x impact, 1-25.
    pub score: u8,
    pub band: Band,
    /// True when an unexpired CRMRiskException covers this finding.
    pub accepted: bool,
    /// The exception that accepted it (`namespace/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
    pub message: String,
    #[serde(default = "no_remediation", skip_serializing_if = "str_is_empty")]
    pub remediation: Arc<str>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

fn no_remediation() -> Arc<str> {
    Arc::from("")
}

fn str_is_empty(s: &Arc<str>) -> bool {
    s.is_empty()
}
