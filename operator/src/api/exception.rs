//! `CRMRiskException` (namespaced): an approved, time-limited acceptance of some findings on
//! some workloads of the exception's own namespace.
//!
//! An accepted finding is still reported (marked `accepted`, with the exception's name), but no
//! longer puts its workload at risk. Every exception expires: `expiresAt` is required, and the
//! operator, `crmrisk scan` and the reports all decide through [`CRMRiskException::accepts`], so
//! an expired exception stops counting everywhere at the same moment.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::selector::{selector_matches, validate_selector};
use crate::model::{WorkloadKind, WorkloadRef};

/// The rule id that means "every rule".
pub const ALL_RULES: &str = "*";

/// Accepts the findings of some rules on some workloads of this namespace until `expiresAt`.
/// Exceptions that never expire are how accepted risks get forgotten, so an expiry is required;
/// renew it deliberately (new approval, new date) when the risk is still accepted.
// One `printcolumn(...)` per column repeats `type_ = ...`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "crmrisk.io",
    version = "v1alpha1",
    kind = "CRMRiskException",
    plural = "crmriskexceptions",
    singular = "crmriskexception",
    namespaced,
    shortname = "cre",
    category = "crmrisk",
    derive = "PartialEq",
    doc = "CRMRiskException accepts, until it expires, the findings of some rules on some workloads of its namespace.",
    printcolumn(name = "Rules", type_ = "string", json_path = ".spec.rules"),
    printcolumn(name = "Approved By", type_ = "string", json_path = ".spec.approvedBy"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("(has(self.workloads) && size(self.workloads) > 0) || has(self.workloadSelector)").message("set workloads, workloadSelector or both"))]
#[serde(rename_all = "camelCase")]
pub struct CRMRiskExceptionSpec {
    /// Workloads of this namespace, by name (and kind, when given). Combined with
    /// `workloadSelector` by OR. At least one of the two is required.
    #[serde(default)]
    pub workloads: Vec<ExceptionWorkload>,

    /// Workloads of this namespace whose labels match. Combined with `workloads` by OR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,

    /// Rule ids accepted (e.g. `BKP-001`); `*` accepts every rule. Prefer listing rules: `*`
    /// also hides rules added later.
    #[schemars(length(min = 1), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub rules: Vec<String>,

    /// CRMRiskPolicy names the exception applies to; empty means every policy.
    #[serde(default)]
    #[schemars(inner(length(min = 1, max = 253)), extend("x-kubernetes-list-type" = "set"))]
    pub policies: Vec<String>,

    /// Why the risk is accepted (at least 10 characters): the compensating control, the ticket.
    #[schemars(length(min = 10))]
    pub reason: String,

    /// Who approved the exception.
    #[schemars(length(min = 1))]
    pub approved_by: String,

    /// When the exception stops applying (RFC 3339, e.g. `2026-12-31T00:00:00Z`). Required:
    /// exceptions that never expire are a known way for accepted risks to be forgotten.
    pub expires_at: Time,
}

/// A workload named by an exception.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionWorkload {
    /// Workload kind; omitted: any kind with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = enum_without_null)]
    pub kind: Option<WorkloadKind>,
    /// Workload name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// schemars lists `null` among the values of an optional enum; the CRD form is the plain enum
/// (the field is optional because it is not `required`).
fn enum_without_null(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

impl CRMRiskExceptionSpec {
    /// Whether the exception still applies at `now` (strictly before `expiresAt`).
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.expires_at.0
    }

    /// Whether the exception names this workload (by `workloads` or by `workloadSelector`).
    /// Namespaces are not compared here; see [`CRMRiskException::covers`].
    pub fn covers_workload(&self, kind: WorkloadKind, name: &str, labels: &BTreeMap<String, String>) -> bool {
        let named = self.workloads.iter().any(|w| w.name == name && w.kind.is_none_or(|k| k == kind));
        named || self.workload_selector.as_ref().is_some_and(|s| selector_matches(s, labels))
    }

    /// Whether the exception applies to findings of policy `policy_name`.
    pub fn covers_policy(&self, policy_name: &str) -> bool {
        self.policies.is_empty() || self.policies.iter().any(|p| p == policy_name)
    }

    /// Whether the exception accepts rule `rule_id`.
    pub fn covers_rule(&self, rule_id: &str) -> bool {
        self.rules.iter().any(|r| r == ALL_RULES || r == rule_id)
    }

    /// Checks what the CRD schema checks (and the selector), for exceptions that did not come
    /// through the apiserver (`crmrisk scan`). Returns one message per problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.workloads.is_empty() && self.workload_selector.is_none() {
            problems.push("set workloads, workloadSelector or both".to_string());
        }
        if self.workloads.iter().any(|w| w.name.is_empty()) {
            problems.push("workloads: empty name".to_string());
        }
        if let Some(selector) = &self.workload_selector
            && let Err(e) = validate_selector(selector)
        {
            problems.push(format!("workloadSelector: {e}"));
        }
        if self.rules.is_empty() || self.rules.iter().any(String::is_empty) {
            problems.push("rules: list at least one rule id (or *)".to_string());
        }
        if self.reason.chars().count() < 10 {
            problems.push("reason: explain the acceptance in at least 10 characters".to_string());
        }
        if self.approved_by.is_empty() {
            problems.push("approvedBy: required".to_string());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

impl CRMRiskException {
    /// Whether the exception still applies at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.spec.is_active(now)
    }

    /// Whether the exception's scope covers rule `rule_id` of policy `policy_name` on this
    /// workload: same namespace as the exception, workload named or selected, policy and rule
    /// listed. Ignores expiry: use [`CRMRiskException::accepts`] to decide about a finding.
    pub fn covers(
        &self,
        workload: &WorkloadRef,
        workload_labels: &BTreeMap<String, String>,
        policy_name: &str,
        rule_id: &str,
    ) -> bool {
        self.metadata.namespace.as_deref() == Some(workload.namespace.as_str())
            && self.spec.covers_workload(workload.kind, &workload.name, workload_labels)
            && self.spec.covers_policy(policy_name)
            && self.spec.covers_rule(rule_id)
    }

    /// Whether the exception accepts this finding at `now`: active and covering it.
    pub fn accepts(
        &self,
        now: Timestamp,
        workload: &WorkloadRef,
        workload_labels: &BTreeMap<String, String>,
        policy_name: &str,
        rule_id: &str,
    ) -> bool {
        self.is_active(now) && self.covers(workload, workload_labels, policy_name, rule_id)
    }

    /// `namespace/name`, as recorded in a finding's `acceptedBy`.
    pub fn reference(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    fn exception(spec: serde_json::Value) -> CRMRiskException {
        let spec: CRMRiskExceptionSpec = serde_json::from_value(spec).expect("valid spec");
        CRMRiskException {
            metadata: ObjectMeta {
                name: Some("db-backups".into()),
                namespace: Some("crm".into()),
                ..Default::default()
            },
            spec,
        }
    }

    fn workload(kind: WorkloadKind, ns: &str, name: &str) -> WorkloadRef {
        WorkloadRef { kind, namespace: ns.into(), name: name.into() }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base() -> serde_json::Value {
        json!({
            "workloads": [{"kind": "StatefulSet", "name": "crm-db"}, {"name": "crm-cache"}],
            "rules": ["BKP-001", "BKP-002"],
            "reason": "Snapshots by the storage array, ticket SEC-42",
            "approvedBy": "ciso@example.com",
            "expiresAt": "2026-06-30T00:00:00Z",
        })
    }

    #[test]
    fn expires_at_the_given_instant() {
        let e = exception(base());
        assert!(e.is_active(ts("2026-01-01T00:00:00Z")));
        assert!(e.is_active(ts("2026-06-29T23:59:59Z")));
        assert!(!e.is_active(ts("2026-06-30T00:00:00Z")));
        assert!(!e.is_active(ts("2027-01-01T00:00:00Z")));

        let db = workload(WorkloadKind::StatefulSet, "crm", "crm-db");
        assert!(e.accepts(ts("2026-01-01T00:00:00Z"), &db, &labels(&[]), "baseline", "BKP-001"));
        assert!(!e.accepts(ts("2026-07-01T00:00:00Z"), &db, &labels(&[]), "baseline", "BKP-001"));
        assert!(e.covers(&db, &labels(&[]), "baseline", "BKP-001"), "covers ignores expiry");
    }

    #[test]
    fn covers_named_workloads_of_its_own_namespace_only() {
        let e = exception(base());
        let none = labels(&[]);
        assert!(e.covers(&workload(WorkloadKind::StatefulSet, "crm", "crm-db"), &none, "p", "BKP-002"));
        assert!(!e.covers(&workload(WorkloadKind::Deployment, "crm", "crm-db"), &none, "p", "BKP-001"), "kind given");
        assert!(e.covers(&workload(WorkloadKind::Deployment, "crm", "crm-cache"), &none, "p", "BKP-001"), "any kind");
        assert!(e.covers(&workload(WorkloadKind::CronJob, "crm", "crm-cache"), &none, "p", "BKP-001"), "any kind");
        assert!(!e.covers(&workload(WorkloadKind::StatefulSet, "other", "crm-db"), &none, "p", "BKP-001"), "namespace");
        assert!(!e.covers(&workload(WorkloadKind::StatefulSet, "crm", "crm-web"), &none, "p", "BKP-001"));
        assert!(!e.covers(&workload(WorkloadKind::StatefulSet, "crm", "crm-db"), &none, "p", "ENC-001"), "rule");
    }

    #[test]
    fn selector_wildcard_rules_and_policy_lists() {
        let mut spec = base();
        spec["workloads"] = json!([]);
        spec["workloadSelector"] = json!({"matchLabels": {"app.kubernetes.io/part-of": "crm"}});
        spec["rules"] = json!(["*"]);
        spec["policies"] = json!(["baseline"]);
        let e = exception(spec);
        let w = workload(WorkloadKind::Deployment, "crm", "anything");
        let crm = labels(&[("app.kubernetes.io/part-of", "crm")]);
        assert!(e.covers(&w, &crm, "baseline", "ENC-001"));
        assert!(e.covers(&w, &crm, "baseline", "CUSTOM-7"));
        assert!(!e.covers(&w, &crm, "strict", "ENC-001"), "policy not listed");
        assert!(!e.covers(&w, &labels(&[]), "baseline", "ENC-001"), "labels do not match");
        assert_eq!(e.reference(), "crm/db-backups");
        assert_eq!(e.spec.validate(), Ok(()));
    }

    #[test]
    fn validate_mirrors_the_schema() {
        let mut spec = base();
        spec["workloads"] = json!([]);
        spec["rules"] = json!([]);
        spec["reason"] = json!("because");
        spec["approvedBy"] = json!("");
        let problems = exception(spec).spec.validate().expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn expiry_is_required() {
        let mut spec = base();
        spec.as_object_mut().expect("object").remove("expiresAt");
        assert!(serde_json::from_value::<CRMRiskExceptionSpec>(spec).is_err());
    }
}
