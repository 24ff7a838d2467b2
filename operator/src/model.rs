//! Small vocabulary types shared by every layer (API, context, engine, risk, writers).
//! Kept here, with no dependencies, so that the layers agree on spelling without depending on
//! each other.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Workload kinds a policy can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 4] =
        [WorkloadKind::Deployment, WorkloadKind::StatefulSet, WorkloadKind::DaemonSet, WorkloadKind::CronJob];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::CronJob => "batch/v1",
            _ => "apps/v1",
        }
    }

    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The area a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    Encryption,
    Backups,
    Rbac,
    DisasterRecovery,
    Custom,
}

impl Category {
    pub const BUILT_IN: [Category; 4] =
        [Category::Encryption, Category::Backups, Category::Rbac, Category::DisasterRecovery];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Encryption => "encryption",
            Category::Backups => "backups",
            Category::Rbac => "rbac",
            Category::DisasterRecovery => "disasterRecovery",
            Category::Custom => "custom",
        }
    }

    /// The Rego package (under `data.crmrisk`) that holds the built-in rules of this area.
    pub fn package(self) -> &'static str {
        match self {
            Category::Encryption => "encryption",
            Category::Backups => "backups",
            Category::Rbac => "rbac",
            Category::DisasterRecovery => "disaster_recovery",
            Category::Custom => "custom",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Control class of a rule (NIST SP 800-30 / ISO 27005 vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Control {
    Prevention,
    Detection,
    Response,
    Recovery,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Prevention => "prevention",
            Control::Detection => "detection",
            Control::Response => "response",
            Control::Recovery => "recovery",
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The security objective a rule protects; decides which workload label raises its impact
/// (data classification for confidentiality/integrity, business impact for availability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Objective {
    Confidentiality,
    Integrity,
    Availability,
}

/// Risk band of a score (1-25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Band {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Band {
    /// low 1-4, medium 5-9, high 10-16, critical 20-25 (products of two 1-5 factors never fall
    /// in 17-19; a stray value there counts as high). 0 means no finding.
    pub fn of(score: u8) -> Band {
        match score {
            0 => Band::None,
            1..=4 => Band::Low,
            5..=9 => Band::Medium,
            10..=19 => Band::High,
            _ => Band::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::None => "none",
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
            Band::Critical => "critical",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `crmrisk.io/data-classification` label values, least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataClassification {
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl DataClassification {
    pub const LABEL: &'static str = "crmrisk.io/data-classification";
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" => Some(Self::Public),
            "internal" => Some(Self::Internal),
            "confidential" => Some(Self::Confidential),
            "restricted" => Some(Self::Restricted),
            _ => None,
        }
    }
}

/// `crmrisk.io/business-impact` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BusinessImpact {
    Low,
    Medium,
    High,
    Critical,
}

impl BusinessImpact {
    pub const LABEL: &'static str = "crmrisk.io/business-impact";
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_documented_ranges() {
        assert_eq!(Band::of(0), Band::None);
        for s in 1..=4 {
            assert_eq!(Band::of(s), Band::Low);
        }
        for s in 5..=9 {
            assert_eq!(Band::of(s), Band::Medium);
        }
        for s in 10..=16 {
            assert_eq!(Band::of(s), Band::High);
        }
        for s in 20..=25 {
            assert_eq!(Band::of(s), Band::Critical);
        }
    }

    #[test]
    fn labels_parse_case_insensitively_and_reject_unknown_values() {
        assert_eq!(DataClassification::parse("Restricted"), Some(DataClassification::Restricted));
        assert_eq!(DataClassification::parse("secret"), None);
        assert_eq!(BusinessImpact::parse(" high "), Some(BusinessImpact::High));
        assert_eq!(WorkloadKind::parse("StatefulSet"), Some(WorkloadKind::StatefulSet));
        assert_eq!(WorkloadKind::parse("Pod"), None);
    }
}
