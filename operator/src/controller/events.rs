//! Events (events.k8s.io) on transitions only: a workload crossing its policy's tolerance, a
//! workload coming back, a policy that does not compile, an object the operator cannot read.
//! One shared `Recorder` de-duplicates repeats into a series.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

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

/// Publish, logging (not failing) when the API refuses: an event is never worth a retry loop.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) -> bool {
    let mut note = note;
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let ev = Event { type_, reason: reason.to_owned(), note: Some(note), action: action.to_owned(), secondary: None };
    match recorder.publish(&ev, regarding).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, reason, "could not publish event");
            false
        }
    }
}
