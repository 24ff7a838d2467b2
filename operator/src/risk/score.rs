//! Scoring, after NIST SP 800-30 / ISO 27005: risk = likelihood x impact on 1-5 scales.
//!
//! The impact of a finding depends on what the workload holds, so it is raised by the
//! workload's labels, along the security objective the rule protects:
//!
//! | objective | label | uplift |
//! |---|---|---|
//! | confidentiality, integrity | `crmrisk.io/data-classification` | confidential +1, restricted +2 |
//! | availability | `crmrisk.io/business-impact` | high +1, critical +2 |
//!
//! Public/internal data and low/medium business impact leave the impact as the rule defines
//! it (labels only raise, never lower: a missing label must not hide a risk). The result is
//! capped at 5.

use std::collections::BTreeMap;

use crate::engine::{RawFinding, RuleCatalog, RuleMeta};
use crate::model::{Band, BusinessImpact, Category, Control, DataClassification, Objective};

use super::ScoredFinding;

/// A per-rule adjustment from a policy (`spec.checks.rules`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleAdjustment {
    /// `Some(false)` disables the rule.
    pub enabled: Option<bool>,
    pub likelihood: Option<u8>,
    pub impact: Option<u8>,
}

/// What scoring needs to know about the workload and the policy.
#[derive(Debug, Clone, Default)]
pub struct ScoringInput<'a> {
    pub data_classification: Option<DataClassification>,
    pub business_impact: Option<BusinessImpact>,
    pub adjustments: Option<&'a BTreeMap<String, RuleAdjustment>>,
}

/// How much the workload's labels raise the impact of a rule protecting `objective`.
pub fn impact_uplift(
    objective: Objective,
    data_classification: Option<DataClassification>,
    business_impact: Option<BusinessImpact>,
) -> u8 {
    match objective {
        Objective::Confidentiality | Objective::Integrity => match data_classification {
            Some(DataClassification::Restricted) => 2,
            Some(DataClassification::Confidential) => 1,
            _ => 0,
        },
        Objective::Availability => match business_impact {
            Some(BusinessImpact::Critical) => 2,
            Some(BusinessImpact::High) => 1,
            _ => 0,
        },
    }
}

fn clamp_1_5(v: u8) -> u8 {
    v.clamp(1, 5)
}

/// Metadata for a rule the catalog does not know (a custom module that forgot an entry):
/// scored as a medium custom detection, and the message says so.
fn unknown_rule(id: &str) -> RuleMeta {
    RuleMeta {
        title: id.into(),
        category: Category::Custom,
        control: Control::Detection,
        objective: Objective::Integrity,
        likelihood: 3,
        impact: 3,
        remediation: "".into(),
        description: String::new(),
    }
}

/// Score one raw finding. `None` when the policy disabled the rule.
pub fn score(raw: &RawFinding, catalog: &RuleCatalog, input: &ScoringInput<'_>) -> Option<ScoredFinding> {
    let adj = input.adjustments.and_then(|a| a.get(&raw.id));
    if adj.and_then(|a| a.enabled) == Some(false) {
        return None;
    }
    let fallback;
    let meta = match catalog.get(&raw.id) {
        Some(m) => m,
        None => {
            fallback = unknown_rule(&raw.id);
            &fallback
        }
    };
    // Precedence: the policy's override, then the finding's own value, then the default.
    let likelihood = clamp_1_5(adj.and_then(|a| a.likelihood).or(raw.likelihood).unwrap_or(meta.likelihood));
    let base_impact = clamp_1_5(adj.and_then(|a| a.impact).or(raw.impact).unwrap_or(meta.impact));
    let impact = clamp_1_5(base_impact.saturating_add(impact_uplift(
        meta.objective,
        input.data_classification,
        input.business_impact,
    )));
    let score = likelihood * impact;
    let mut message = raw.message.clone();
    if catalog.get(&raw.id).is_none() {
        message.push_str(" (rule has no metadata; scored with defaults)");
    }
    Some(ScoredFinding {
        id: raw.id.clone(),
        title: meta.title.clone(),
        category: meta.category,
        control: meta.control,
        likelihood,
        impact,
        score,
        band: Band::of(score),
        accepted: false,
        accepted_by: None,
        message,
        remediation: meta.remediation.clone(),
        evidence: raw.evidence.clone(),
    })
}

/// The verdict on one workload under one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Highest score among the workload's findings (accepted ones included: they stay visible).
    pub score: u8,
    pub band: Band,
    /// No unaccepted finding reaches the tolerance.
    pub acceptable: bool,
    /// Findings at or above the tolerance that exceptions accept.
    pub accepted_above_tolerance: usize,
}

/// Judge a workload's scored findings against a tolerance (1-25).
pub fn verdict(findings: &[ScoredFinding], tolerance: u8) -> Verdict {
    let score = findings.iter().map(|f| f.score).max().unwrap_or(0);
    let above = |f: &&ScoredFinding| f.score >= tolerance;
    Verdict {
        score,
        band: Band::of(score),
        acceptable: !findings.iter().filter(above).any(|f| !f.accepted),
        accepted_above_tolerance: findings.iter().filter(above).filter(|f| f.accepted).count(),
    }
}

/// Order findings for display: unaccepted first, then by score (highest first), then id.
pub fn sort_findings(findings: &mut [ScoredFinding]) {
    findings.sort_by(|a, b| {
        a.accepted
            .cmp(&b.accepted)
            .then(b.score.cmp(&a.score))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.message.cmp(&b.message))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> RuleCatalog {
        RuleCatalog::from_metadata_json(
            r#"{"crmrisk":{"rules":{
              "ENC-X":{"title":"t","category":"encryption","control":"prevention","objective":"confidentiality","likelihood":3,"impact":3},
              "DR-X":{"title":"t","category":"disasterRecovery","control":"recovery","objective":"availability","likelihood":4,"impact":4}
            }}}"#,
        )
        .unwrap()
    }

    fn raw(id: &str) -> RawFinding {
        RawFinding { id: id.into(), message: "m".into(), evidence: vec![], likelihood: None, impact: None }
    }

    #[test]
    fn score_is_likelihood_times_impact_with_band() {
        let f = score(&raw("ENC-X"), &catalog(), &ScoringInput::default()).unwrap();
        assert_eq!((f.likelihood, f.impact, f.score, f.band), (3, 3, 9, Band::Medium));
        assert_eq!(f.category, Category::Encryption);
    }

    #[test]
    fn classification_raises_confidentiality_impact_and_business_impact_raises_availability() {
        let c = catalog();
        let restricted = ScoringInput {
            data_classification: Some(DataClassification::Restricted),
            business_impact: Some(BusinessImpact::Low),
            ..Default::default()
        };
        assert_eq!(score(&raw("ENC-X"), &c, &restricted).unwrap().impact, 5);
        // Availability rules ignore data classification...
        assert_eq!(score(&raw("DR-X"), &c, &restricted).unwrap().impact, 4);
        // ...and are raised by business impact, capped at 5.
        let critical = ScoringInput { business_impact: Some(BusinessImpact::Critical), ..Default::default() };
        let f = score(&raw("DR-X"), &c, &critical).unwrap();
        assert_eq!((f.impact, f.score, f.band), (5, 20, Band::Critical));
        let confidential =
            ScoringInput { data_classification: Some(DataClassification::Confidential), ..Default::default() };
        assert_eq!(score(&raw("ENC-X"), &c, &confidential).unwrap().score, 12);
        let public = ScoringInput { data_classification: Some(DataClassification::Public), ..Default::default() };
        assert_eq!(score(&raw("ENC-X"), &c, &public).unwrap().score, 9);
    }

    #[test]
    fn overrides_take_precedence_and_can_disable() {
        let c = catalog();
        let mut adj = BTreeMap::new();
        adj.insert("ENC-X".to_owned(), RuleAdjustment { likelihood: Some(5), impact: Some(1), enabled: None });
        adj.insert("DR-X".to_owned(), RuleAdjustment { enabled: Some(false), ..Default::default() });
        let input = ScoringInput { adjustments: Some(&adj), ..Default::default() };
        let mut r = raw("ENC-X");
        r.likelihood = Some(2);
        assert_eq!(score(&r, &c, &input).unwrap().score, 5);
        assert!(score(&raw("DR-X"), &c, &input).is_none());
    }

    #[test]
    fn unknown_rules_are_scored_with_defaults_and_flagged() {
        let f = score(&raw("CUSTOM-1"), &catalog(), &ScoringInput::default()).unwrap();
        assert_eq!((f.category, f.score), (Category::Custom, 9));
        assert!(f.message.contains("no metadata"));
    }

    #[test]
    fn verdict_uses_tolerance_and_ignores_accepted_findings() {
        let c = catalog();
        let crit = ScoringInput { business_impact: Some(BusinessImpact::Critical), ..Default::default() };
        let mut fs =
            vec![score(&raw("ENC-X"), &c, &ScoringInput::default()).unwrap(), score(&raw("DR-X"), &c, &crit).unwrap()];
        let v = verdict(&fs, 10);
        assert_eq!((v.score, v.band, v.acceptable), (20, Band::Critical, false));
        fs[1].accepted = true;
        let v = verdict(&fs, 10);
        assert_eq!((v.score, v.acceptable, v.accepted_above_tolerance), (20, true, 1));
        // At the tolerance counts as unacceptable.
        let v = verdict(&fs[..1], 9);
        assert!(!v.acceptable);
        assert!(verdict(&[], 1).acceptable);
    }
}
