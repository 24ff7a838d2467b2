//! Status conditions (`metav1.Condition`) for our resources, and the condition types and reasons
//! the operator uses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type: the policy compiled and its last audit ran.
pub const READY: &str = "Ready";
/// Condition type: no matched workload has an unaccepted finding at or above the tolerance.
pub const RISK_WITHIN_TOLERANCE: &str = "RiskWithinTolerance";

/// Condition reasons (CamelCase, as the API conventions ask).
pub mod reason {
    /// Ready=True: the last audit evaluated every matched workload.
    pub const AUDIT_SUCCEEDED: &str = "AuditSucceeded";
    /// Ready=False: the audit could not run (API errors, evaluation limits, ...).
    pub const AUDIT_FAILED: &str = "AuditFailed";
    /// Ready=False: a custom policy does not compile, or its ConfigMap is missing.
    pub const POLICY_COMPILE_ERROR: &str = "PolicyCompileError";
    /// Ready=False: the spec is invalid in a way the schema cannot catch (e.g. a bad selector).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Ready=Unknown/False: the first audit has not finished yet.
    pub const PENDING: &str = "Pending";
    /// RiskWithinTolerance=False: at least one workload has an unaccepted finding >= tolerance.
    pub const RISK_ABOVE_TOLERANCE: &str = "RiskAboveTolerance";
    /// RiskWithinTolerance=True: every finding is below tolerance or accepted.
    pub const WITHIN_TOLERANCE: &str = "WithinTolerance";
    /// RiskWithinTolerance=True: the policy matches no workload.
    pub const NO_WORKLOADS_MATCHED: &str = "NoWorkloadsMatched";
    /// Ready=False: some matched workloads could not be evaluated (time or instruction limit,
    /// malformed finding); their last reports are kept.
    pub const EVALUATION_FAILED: &str = "EvaluationFailed";
}

/// The apiserver's limit on `Condition.message` (bytes).
pub const MAX_MESSAGE_LEN: usize = 32768;

/// Sets (adds or updates) the condition `type_` in `conditions`.
///
/// `lastTransitionTime` is set to `now` when the condition is new or its status flips, and is
/// kept otherwise, so it tells when the state last changed rather than when it was last written.
/// Messages longer than the apiserver accepts are cut (on a character boundary).
///
/// Returns whether anything other than timestamps changed, so writers can skip no-op patches.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = if status { "True" } else { "False" };
    let message = truncate(message.into(), MAX_MESSAGE_LEN);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != reason
                || existing.message != message
                || existing.observed_generation != observed_generation;
            if existing.status != status {
                existing.last_transition_time = Time(now);
                existing.status = status.to_string();
            }
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                observed_generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition `type_` is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn adds_a_new_condition_with_the_current_time() {
        let mut conditions = Vec::new();
        assert!(set_condition(&mut conditions, READY, true, reason::AUDIT_SUCCEEDED, "ok", Some(3), ts(100)));
        assert_eq!(conditions.len(), 1);
        let c = &conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str(), c.reason.as_str()), ("Ready", "True", "AuditSucceeded"));
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, Time(ts(100)));
        assert!(is_condition_true(&conditions, READY));
        assert!(!is_condition_true(&conditions, RISK_WITHIN_TOLERANCE));
    }

    #[test]
    fn keeps_the_transition_time_unless_the_status_flips() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, RISK_WITHIN_TOLERANCE, true, reason::WITHIN_TOLERANCE, "", Some(1), ts(100));

        // Same status, new message and generation: updated, transition time kept.
        let changed = set_condition(
            &mut conditions,
            RISK_WITHIN_TOLERANCE,
            true,
            reason::NO_WORKLOADS_MATCHED,
            "no workloads",
            Some(2),
            ts(200),
        );
        assert!(changed);
        let c = find_condition(&conditions, RISK_WITHIN_TOLERANCE).expect("present");
        assert_eq!(c.last_transition_time, Time(ts(100)));
        assert_eq!(c.reason, "NoWorkloadsMatched");
        assert_eq!(c.observed_generation, Some(2));

        // Identical content: nothing changed.
        let changed = set_condition(
            &mut conditions,
            RISK_WITHIN_TOLERANCE,
            true,
            reason::NO_WORKLOADS_MATCHED,
            "no workloads",
            Some(2),
            ts(300),
        );
        assert!(!changed);
        assert_eq!(conditions[0].last_transition_time, Time(ts(100)));

        // Flip: transition time moves.
        let changed = set_condition(
            &mut conditions,
            RISK_WITHIN_TOLERANCE,
            false,
            reason::RISK_ABOVE_TOLERANCE,
            "x",
            Some(2),
            ts(400),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, Time(ts(400)));
    }

    #[test]
    fn conditions_of_other_types_are_left_alone() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, READY, false, reason::POLICY_COMPILE_ERROR, "bad rego", None, ts(1));
        set_condition(&mut conditions, RISK_WITHIN_TOLERANCE, true, reason::WITHIN_TOLERANCE, "", None, ts(2));
        set_condition(&mut conditions, READY, true, reason::AUDIT_SUCCEEDED, "", None, ts(3));
        assert_eq!(conditions.len(), 2);
        assert_eq!(
            find_condition(&conditions, RISK_WITHIN_TOLERANCE).map(|c| c.last_transition_time.clone()),
            Some(Time(ts(2)))
        );
        assert_eq!(find_condition(&conditions, READY).map(|c| c.last_transition_time.clone()), Some(Time(ts(3))));
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let mut conditions = Vec::new();
        let long = "é".repeat(MAX_MESSAGE_LEN); // 2 bytes each
        set_condition(&mut conditions, READY, false, reason::AUDIT_FAILED, long, None, ts(1));
        let msg = &conditions[0].message;
        assert!(msg.len() <= MAX_MESSAGE_LEN);
        assert_eq!(msg.len(), MAX_MESSAGE_LEN);
        assert!(msg.chars().all(|c| c == 'é'));
    }

    #[test]
    fn reasons_are_valid_condition_reasons() {
        // metav1.Condition.reason must match ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$
        for r in [
            reason::AUDIT_SUCCEEDED,
            reason::AUDIT_FAILED,
            reason::POLICY_COMPILE_ERROR,
            reason::INVALID_SPEC,
            reason::PENDING,
            reason::RISK_ABOVE_TOLERANCE,
            reason::WITHIN_TOLERANCE,
            reason::NO_WORKLOADS_MATCHED,
        ] {
            assert!(r.chars().next().is_some_and(|c| c.is_ascii_alphabetic()), "{r}");
            assert!(r.chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
        }
    }
}
