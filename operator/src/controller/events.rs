//! Events (events.k8s.io) on transitions only: a workload crossing its policy's tolerance, a
//! workload coming back, a policy that does not compile, an object the operator cannot read.
//! Each workload that crosses gets its own Event; the policy gets at most one per direction and
//! pass, naming the first few, so a first audit of thousands of workloads does not put thousands
//! of Events on one object; failed evaluations are named up to five per pass, then counted.
//! Transitions are created directly ([`publish_transition`]); the rarer
//! Events that can repeat (compile errors, unreadable objects) go through one shared `Recorder`,
//! which counts repeats into a series.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};

use crate::model::WorkloadRef;

pub const REASON_ABOVE: &str = "RiskAboveTolerance";
pub const REASON_WITHIN: &str = "RiskWithinTolerance";
pub const REASON_COMPILE: &str = "PolicyCompileError";
pub const REASON_EVALUATION: &str = "EvaluationFailed";
pub const REASON_INVALID: &str = "InvalidObject";

/// An event `regarding` reference to a workload (uid makes `kubectl describe` show it).
pub fn workload_reference(w: &WorkloadRef, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(w.kind.api_version().to_owned()),
        kind: Some(w.kind.as_str().to_owned()),
        namespace: Some(w.namespace.clone()),
        name: Some(w.name.clone()),
        uid: uid.map(str::to_owned),
        ..Default::default()
    }
}

pub fn policy_reference(name: &str, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(format!("{}/{}", crate::api::GROUP, crate::api::VERSION)),
        kind: Some("CRMRiskPolicy".to_owned()),
        name: Some(name.to_owned()),
        uid: uid.map(str::to_owned),
        ..Default::default()
    }
}

/// How many workloads a policy's summary Event names before "and N more".
pub const NAMED_IN_SUMMARY: usize = 5;

/// The policy's Events for one pass: one for the workloads that rose to or above `tolerance`,
/// one for those that came back within it (either left out when empty).
pub fn policy_transition_notes(
    policy: &str,
    tolerance: u8,
    transitions: &[(WorkloadRef, bool)],
) -> Vec<(EventType, &'static str, String)> {
    let mut out = Vec::new();
    for within in [false, true] {
        let crossed: Vec<&WorkloadRef> = transitions.iter().filter(|(_, ok)| *ok == within).map(|(r, _)| r).collect();
        if crossed.is_empty() {
            continue;
        }
        let mut names: Vec<String> =
            crossed.iter().take(NAMED_IN_SUMMARY).map(|r| format!("{} {}/{}", r.kind, r.namespace, r.name)).collect();
        if crossed.len() > NAMED_IN_SUMMARY {
            names.push(format!("and {} more", crossed.len() - NAMED_IN_SUMMARY));
        }
        let (type_, reason, verb) = if within {
            (EventType::Normal, REASON_WITHIN, "came back within")
        } else {
            (EventType::Warning, REASON_ABOVE, "rose to or above")
        };
        let count = match crossed.len() {
            1 => "1 workload".to_owned(),
            n => format!("{n} workloads"),
        };
        out.push((
            type_,
            reason,
            format!("{count} {verb} the tolerance {tolerance} of policy {policy}: {}", names.join(", ")),
        ));
    }
    out
}

/// The policy's `EvaluationFailed` notes for the workloads whose evaluation newly failed in one
/// pass: one per workload for the first few, then one that counts the rest (a policy that hits
/// its time limit on every workload would otherwise write thousands of Events).
pub fn failure_notes(policy: &str, failures: &[(WorkloadRef, String)]) -> Vec<String> {
    let mut notes: Vec<String> = failures
        .iter()
        .take(NAMED_IN_SUMMARY)
        .map(|(r, why)| {
            format!(
                "{} {}/{} could not be evaluated by policy {policy}: {why}; its last report is kept",
                r.kind, r.namespace, r.name
            )
        })
        .collect();
    if failures.len() > NAMED_IN_SUMMARY {
        notes.push(format!(
            "{} more workloads could not be evaluated by policy {policy}; their last reports are kept \
             (status.summary.workloadsFailed counts them all)",
            failures.len() - NAMED_IN_SUMMARY
        ));
    }
    notes
}

/// Publish a transition Event without the `Recorder`: its series cache keeps every distinct
/// Event for six minutes (and scans them all on each publish), which for a first audit of
/// 5,000 workloads was the largest single item of the operator's peak memory. Transitions do not
/// repeat back to back (the next one goes the other way), so there is no series to count.
pub async fn publish_transition(
    client: &Client,
    reporter: &Reporter,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) -> bool {
    let now = Timestamp::now();
    let ev = K8sEvent {
        action: Some("Evaluate".to_owned()),
        reason: Some(reason.to_owned()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        note: Some(truncate_note(note)),
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or(&reporter.controller),
                now.as_nanosecond()
            )),
            ..Default::default()
        },
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone())),
        type_: Some(match type_ {
            EventType::Normal => "Normal".to_owned(),
            EventType::Warning => "Warning".to_owned(),
        }),
        ..Default::default()
    };
    let api: Api<K8sEvent> = Api::namespaced(client.clone(), regarding.namespace.as_deref().unwrap_or("default"));
    match api.create(&PostParams::default(), &ev).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, reason, "could not publish event");
            false
        }
    }
}

/// The API server refuses notes over 1 kB.
fn truncate_note(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

/// Publish, logging (not failing) when the API refuses: an event is never worth a retry loop.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) -> bool {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate_note(note)),
        action: action.to_owned(),
        secondary: None,
    };
    match recorder.publish(&ev, regarding).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, reason, "could not publish event");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn w(name: &str) -> WorkloadRef {
        WorkloadRef { kind: WorkloadKind::Deployment, namespace: "crm".into(), name: name.into() }
    }

    #[test]
    fn a_pass_gives_the_policy_one_event_per_direction() {
        let mut t: Vec<(WorkloadRef, bool)> = (0..8).map(|i| (w(&format!("w{i}")), false)).collect();
        t.push((w("back"), true));
        let notes = policy_transition_notes("p", 10, &t);
        assert_eq!(notes.len(), 2);
        let (type_, reason, note) = &notes[0];
        assert_eq!((*type_, *reason), (EventType::Warning, REASON_ABOVE));
        assert_eq!(
            note,
            "8 workloads rose to or above the tolerance 10 of policy p: Deployment crm/w0, Deployment crm/w1, \
             Deployment crm/w2, Deployment crm/w3, Deployment crm/w4, and 3 more"
        );
        let (type_, reason, note) = &notes[1];
        assert_eq!((*type_, *reason), (EventType::Normal, REASON_WITHIN));
        assert_eq!(note, "1 workload came back within the tolerance 10 of policy p: Deployment crm/back");
        assert!(policy_transition_notes("p", 10, &[]).is_empty());
    }

    #[test]
    fn failures_are_named_up_to_five_then_counted() {
        let few: Vec<(WorkloadRef, String)> = (0..2).map(|i| (w(&format!("w{i}")), "time limit".to_owned())).collect();
        let notes = failure_notes("p", &few);
        assert_eq!(notes.len(), 2);
        assert_eq!(
            notes[0],
            "Deployment crm/w0 could not be evaluated by policy p: time limit; its last report is kept"
        );
        let many: Vec<(WorkloadRef, String)> =
            (0..12).map(|i| (w(&format!("w{i}")), "time limit".to_owned())).collect();
        let notes = failure_notes("p", &many);
        assert_eq!(notes.len(), NAMED_IN_SUMMARY + 1);
        assert!(notes[NAMED_IN_SUMMARY].starts_with("7 more workloads could not be evaluated by policy p"));
        assert!(failure_notes("p", &[]).is_empty());
    }
}
