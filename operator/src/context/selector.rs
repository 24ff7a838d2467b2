//! Label selector matching, with the Kubernetes semantics the builder relies on.
//!
//! Two flavours exist in the API and they differ on the empty case, which is exactly where
//! mistakes hide: a `metav1.LabelSelector` with no requirements selects everything, while a
//! Service's `spec.selector` map that is empty selects nothing (the Service has manually managed
//! endpoints). Callers decide what a *missing* selector means; these functions only judge a
//! selector that is present.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Does `selector` select an object carrying `labels`?
///
/// All `matchLabels` and all `matchExpressions` must hold (AND). An empty selector matches every
/// object. An unknown operator matches nothing, so a typo never widens what a policy or a backup
/// covers.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok =
        selector.match_labels.as_ref().is_none_or(|wanted| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)));
    labels_ok
        && selector.match_expressions.as_ref().is_none_or(|exprs| exprs.iter().all(|e| requirement_matches(e, labels)))
}

/// One `matchExpressions` entry. `NotIn` and `DoesNotExist` match objects without the key, as in
/// `k8s.io/apimachinery/pkg/labels`.
pub fn requirement_matches(req: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// Whether a selector is empty (no `matchLabels` entries and no `matchExpressions`), i.e. selects
/// everything.
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && selector.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Does a Service's `spec.selector` select pods carrying `labels`? A missing or empty selector
/// selects no pods: such a Service's endpoints are managed by hand, not by the workload.
pub fn service_selects(selector: Option<&BTreeMap<String, String>>, labels: &BTreeMap<String, String>) -> bool {
    match selector {
        Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() { None } else { Some(values.iter().map(|v| v.to_string()).collect()) },
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        assert!(matches(&LabelSelector::default(), &labels(&[("app", "x")])));
        assert!(is_empty(&LabelSelector::default()));
    }

    #[test]
    fn match_labels_all_must_hold() {
        let sel = LabelSelector { match_labels: Some(labels(&[("app", "crm"), ("tier", "db")])), ..Default::default() };
        assert!(matches(&sel, &labels(&[("app", "crm"), ("tier", "db"), ("extra", "1")])));
        assert!(!matches(&sel, &labels(&[("app", "crm")])));
        assert!(!matches(&sel, &labels(&[("app", "crm"), ("tier", "web")])));
        assert!(!is_empty(&sel));
    }

    #[test]
    fn match_expressions_follow_kubernetes_semantics() {
        let l = labels(&[("app", "crm"), ("env", "prod")]);
        assert!(requirement_matches(&expr("env", "In", &["prod", "stage"]), &l));
        assert!(!requirement_matches(&expr("env", "In", &["dev"]), &l));
        assert!(!requirement_matches(&expr("missing", "In", &["x"]), &l));
        assert!(requirement_matches(&expr("env", "NotIn", &["dev"]), &l));
        assert!(!requirement_matches(&expr("env", "NotIn", &["prod"]), &l));
        assert!(requirement_matches(&expr("missing", "NotIn", &["prod"]), &l), "NotIn matches a missing key");
        assert!(requirement_matches(&expr("app", "Exists", &[]), &l));
        assert!(!requirement_matches(&expr("missing", "Exists", &[]), &l));
        assert!(requirement_matches(&expr("missing", "DoesNotExist", &[]), &l));
        assert!(!requirement_matches(&expr("app", "DoesNotExist", &[]), &l));
        assert!(!requirement_matches(&expr("app", "Matches", &["crm"]), &l), "unknown operators match nothing");

        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "crm")])),
            match_expressions: Some(vec![expr("env", "In", &["prod"]), expr("canary", "DoesNotExist", &[])]),
        };
        assert!(matches(&sel, &l));
        assert!(!matches(&sel, &labels(&[("app", "crm"), ("env", "prod"), ("canary", "1")])));
    }

    #[test]
    fn service_selector_empty_selects_nothing() {
        let l = labels(&[("app", "crm")]);
        assert!(!service_selects(None, &l));
        assert!(!service_selects(Some(&labels(&[])), &l));
        assert!(service_selects(Some(&labels(&[("app", "crm")])), &l));
        assert!(!service_selects(Some(&labels(&[("app", "crm"), ("tier", "db")])), &l));
    }
}
