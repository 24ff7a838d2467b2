//! The policy status: computed from the assessments (pure), written with server-side apply on
//! the status subresource only when it differs from what is there.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{self, reason as reasons};
use crate::api::{CRMRiskPolicyStatus, PolicySummary, TopFinding, select_top_findings, set_condition};
use crate::assess::Assessment;

/// Summary, top findings and the `RiskWithinTolerance` condition inputs for one policy.
pub fn summarize<'a>(assessments: impl IntoIterator<Item = &'a Assessment>) -> (PolicySummary, Vec<TopFinding>) {
    let mut summary = PolicySummary::default();
    let mut top = Vec::new();
    for a in assessments {
        summary.workloads_matched += 1;
        if !a.verdict.acceptable {
            summary.workloads_at_risk += 1;
        } else if a.verdict.accepted_above_tolerance > 0 {
            summary.workloads_accepted += 1;
        }
        summary.max_score = summary.max_score.max(a.verdict.score);
        for f in &a.findings {
            if !f.accepted {
                *summary.findings_by_band.entry(f.band.as_str().to_owned()).or_default() += 1;
                *summary.findings_by_category.entry(f.category.as_str().to_owned()).or_default() += 1;
            }
            top.push(TopFinding::new(&a.workload, f));
        }
    }
    (summary, select_top_findings(top))
}

/// What went wrong when a policy could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub reason: &'static str,
    pub message: String,
}

/// The desired status, starting from the current one so `lastTransitionTime` survives.
/// `first_failure` describes the first workload whose evaluation failed, when
/// `summary.workloadsFailed` is not zero.
pub fn desired_status(
    current: Option<&CRMRiskPolicyStatus>,
    generation: Option<i64>,
    outcome: Result<(&PolicySummary, &[TopFinding]), &Broken>,
    first_failure: Option<&str>,
    tolerance: u8,
    audit_time: Option<Timestamp>,
    now: Timestamp,
) -> CRMRiskPolicyStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    match outcome {
        Ok((summary, top)) => {
            if summary.workloads_failed == 0 {
                set_condition(
                    &mut status.conditions,
                    conditions::READY,
                    true,
                    reasons::AUDIT_SUCCEEDED,
                    format!("policies compiled; {} workload(s) evaluated", summary.workloads_matched),
                    generation,
                    now,
                );
            } else {
                set_condition(
                    &mut status.conditions,
                    conditions::READY,
                    false,
                    reasons::EVALUATION_FAILED,
                    format!(
                        "{} workload(s) could not be evaluated (their last reports are kept); first: {}",
                        summary.workloads_failed,
                        first_failure.unwrap_or("unknown")
                    ),
                    generation,
                    now,
                );
            }
            let (ok, reason, message) = if summary.workloads_matched == 0 {
                (true, reasons::NO_WORKLOADS_MATCHED, "no workload matches this policy".to_owned())
            } else if summary.workloads_at_risk == 0 {
                (
                    true,
                    reasons::WITHIN_TOLERANCE,
                    format!(
                        "all {} workload(s) are within tolerance {tolerance} (max score {})",
                        summary.workloads_matched, summary.max_score
                    ),
                )
            } else {
                let worst = top.iter().find(|f| !f.accepted);
                let worst = worst
                    .map(|f| {
                        format!(
                            "; top finding {} on {} {}/{} (score {})",
                            f.id, f.workload.kind, f.workload.namespace, f.workload.name, f.score
                        )
                    })
                    .unwrap_or_default();
                (
                    false,
                    reasons::RISK_ABOVE_TOLERANCE,
                    format!(
                        "{} of {} workload(s) at or above tolerance {tolerance}{worst}",
                        summary.workloads_at_risk, summary.workloads_matched
                    ),
                )
            };
            set_condition(
                &mut status.conditions,
                conditions::RISK_WITHIN_TOLERANCE,
                ok,
                reason,
                message,
                generation,
                now,
            );
            status.summary = summary.clone();
            status.top_findings = top.to_vec();
        }
        Err(broken) => {
            set_condition(
                &mut status.conditions,
                conditions::READY,
                false,
                broken.reason,
                broken.message.clone(),
                generation,
                now,
            );
        }
    }
    if let Some(t) = audit_time {
        status.last_audit_time = Some(Time(t));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Band, Category, Control, WorkloadKind, WorkloadRef};
    use crate::risk::{ScoredFinding, Verdict};

    fn assessment(name: &str, score: u8, acceptable: bool) -> Assessment {
        let f = ScoredFinding {
            id: "BKP-001".into(),
            title: "t".into(),
            category: Category::Backups,
            control: Control::Recovery,
            likelihood: 5,
            impact: score / 5,
            score,
            band: Band::of(score),
            accepted: false,
            accepted_by: None,
            message: "m".into(),
            remediation: "".into(),
            evidence: vec![],
        };
        Assessment {
            workload: WorkloadRef { kind: WorkloadKind::Deployment, namespace: "crm".into(), name: name.into() },
            policy: "p".into(),
            findings: vec![f],
            verdict: Verdict { score, band: Band::of(score), acceptable, accepted_above_tolerance: 0 },
            warnings: vec![],
        }
    }

    #[test]
    fn summary_and_conditions_follow_the_assessments() {
        let a = [assessment("web", 20, false), assessment("db", 5, true)];
        let (summary, top) = summarize(a.iter());
        assert_eq!((summary.workloads_matched, summary.workloads_at_risk, summary.max_score), (2, 1, 20));
        assert_eq!(summary.findings_by_band.get("critical"), Some(&1));
        assert_eq!(top[0].workload.name, "web");
        let t0 = Timestamp::from_second(1_000).unwrap();
        let s = desired_status(None, Some(3), Ok((&summary, &top)), None, 10, Some(t0), t0);
        assert_eq!(s.observed_generation, Some(3));
        let risk = s.conditions.iter().find(|c| c.type_ == "RiskWithinTolerance").unwrap();
        assert_eq!(risk.status, "False");
        assert!(risk.message.contains("BKP-001"), "{}", risk.message);
        // Same outcome later: nothing but time moved, so the transition time stays.
        let t1 = Timestamp::from_second(2_000).unwrap();
        let s2 = desired_status(Some(&s), Some(3), Ok((&summary, &top)), None, 10, None, t1);
        assert_eq!(s2, s);
        // Broken policy: Ready flips to False with the reason.
        let broken = Broken { reason: reasons::POLICY_COMPILE_ERROR, message: "x:3:1: bad".into() };
        let s3 = desired_status(Some(&s), Some(4), Err(&broken), None, 10, None, t1);
        let ready = s3.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "PolicyCompileError"));
        assert_eq!(ready.last_transition_time.0, t1);
    }

    #[test]
    fn failed_evaluations_make_the_policy_not_ready_and_name_the_first() {
        let a = [assessment("web", 20, false)];
        let (mut summary, top) = summarize(a.iter());
        summary.workloads_failed = 2;
        let t0 = Timestamp::from_second(1_000).unwrap();
        let first = "Deployment crm/db: evaluation exceeded its limit of 100 VM instructions";
        let s = desired_status(None, Some(1), Ok((&summary, &top)), Some(first), 10, Some(t0), t0);
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "EvaluationFailed"));
        assert!(ready.message.starts_with("2 workload(s) could not be evaluated"), "{}", ready.message);
        assert!(ready.message.contains(first), "{}", ready.message);
        assert_eq!(s.summary.workloads_failed, 2);
        // The risk condition still reflects what was evaluated.
        let risk = s.conditions.iter().find(|c| c.type_ == "RiskWithinTolerance").unwrap();
        assert_eq!(risk.status, "False");
        // Once every workload evaluates again, Ready returns to True.
        summary.workloads_failed = 0;
        let s2 = desired_status(Some(&s), Some(1), Ok((&summary, &top)), None, 10, None, t0);
        let ready = s2.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "AuditSucceeded"));
    }
}
