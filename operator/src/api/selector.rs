//! Kubernetes label selector matching (`matchLabels` + `matchExpressions`), for the
//! `namespaceSelector` / `workloadSelector` fields of our CRDs.
//!
//! Semantics follow the apiserver: every `matchLabels` entry and every expression must hold; an
//! empty selector (`{}`) selects everything. A selector the apiserver would reject (unknown
//! operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values) selects nothing
//! in [`selector_matches`]: failing closed is the safe direction both for a policy (which then
//! reports nothing rather than the wrong workloads) and for an exception (which then accepts
//! nothing). [`validate_selector`] says what is wrong, for conditions and `crmrisk scan`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Why a label selector is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("matchExpressions key {key:?}: unknown operator {operator:?} (want In, NotIn, Exists or DoesNotExist)")]
    UnknownOperator { key: String, operator: String },
    #[error("matchExpressions key {key:?}: operator {operator} needs at least one value")]
    MissingValues { key: String, operator: String },
    #[error("matchExpressions key {key:?}: operator {operator} takes no values")]
    UnexpectedValues { key: String, operator: String },
    #[error("matchExpressions: empty key")]
    EmptyKey,
}

#[derive(Clone, Copy)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

fn parse_requirement(req: &LabelSelectorRequirement) -> Result<Op, SelectorError> {
    if req.key.is_empty() {
        return Err(SelectorError::EmptyKey);
    }
    let op = match req.operator.as_str() {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        other => {
            return Err(SelectorError::UnknownOperator { key: req.key.clone(), operator: other.to_string() });
        }
    };
    let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
    match op {
        Op::In | Op::NotIn if !has_values => {
            Err(SelectorError::MissingValues { key: req.key.clone(), operator: req.operator.clone() })
        }
        Op::Exists | Op::DoesNotExist if has_values => {
            Err(SelectorError::UnexpectedValues { key: req.key.clone(), operator: req.operator.clone() })
        }
        _ => Ok(op),
    }
}

/// Checks that every expression of `selector` is well formed.
pub fn validate_selector(selector: &LabelSelector) -> Result<(), SelectorError> {
    for req in selector.match_expressions.iter().flatten() {
        parse_requirement(req)?;
    }
    Ok(())
}

/// Whether `labels` satisfy `selector`. An empty selector matches everything; an invalid one
/// matches nothing (see the module documentation).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    // Matching itself is shared with the context builder; the API adds the strictness.
    validate_selector(selector).is_ok() && crate::context::selector::matches(selector, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: if values.is_empty() { None } else { Some(values.iter().map(|v| v.to_string()).collect()) },
        }
    }

    fn selector(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: if match_labels.is_empty() { None } else { Some(labels(match_labels)) },
            match_expressions: if exprs.is_empty() { None } else { Some(exprs) },
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[("app", "crm")])));
    }

    #[test]
    fn match_labels_must_all_be_equal() {
        let s = selector(&[("app", "crm"), ("tier", "db")], vec![]);
        assert!(selector_matches(&s, &labels(&[("app", "crm"), ("tier", "db"), ("x", "y")])));
        assert!(!selector_matches(&s, &labels(&[("app", "crm")])));
        assert!(!selector_matches(&s, &labels(&[("app", "crm"), ("tier", "web")])));
    }

    #[test]
    fn expressions_follow_apiserver_semantics() {
        let in_ = selector(&[], vec![expr("env", "In", &["prod", "staging"])]);
        assert!(selector_matches(&in_, &labels(&[("env", "prod")])));
        assert!(!selector_matches(&in_, &labels(&[("env", "dev")])));
        assert!(!selector_matches(&in_, &labels(&[])));

        let not_in = selector(&[], vec![expr("env", "NotIn", &["dev"])]);
        assert!(selector_matches(&not_in, &labels(&[("env", "prod")])));
        assert!(selector_matches(&not_in, &labels(&[])), "NotIn matches a missing label");
        assert!(!selector_matches(&not_in, &labels(&[("env", "dev")])));

        let exists = selector(&[], vec![expr("crmrisk.io/data-classification", "Exists", &[])]);
        assert!(selector_matches(&exists, &labels(&[("crmrisk.io/data-classification", "")])));
        assert!(!selector_matches(&exists, &labels(&[])));

        let absent = selector(&[], vec![expr("skip", "DoesNotExist", &[])]);
        assert!(selector_matches(&absent, &labels(&[])));
        assert!(!selector_matches(&absent, &labels(&[("skip", "true")])));

        let both = selector(&[("app", "crm")], vec![expr("env", "In", &["prod"])]);
        assert!(selector_matches(&both, &labels(&[("app", "crm"), ("env", "prod")])));
        assert!(!selector_matches(&both, &labels(&[("app", "crm"), ("env", "dev")])));
    }

    #[test]
    fn invalid_selectors_match_nothing_and_say_why() {
        let unknown = selector(&[], vec![expr("env", "Equals", &["prod"])]);
        assert!(!selector_matches(&unknown, &labels(&[("env", "prod")])));
        assert!(matches!(validate_selector(&unknown), Err(SelectorError::UnknownOperator { .. })));

        let no_values = selector(&[], vec![expr("env", "NotIn", &[])]);
        assert!(!selector_matches(&no_values, &labels(&[])));
        assert!(matches!(validate_selector(&no_values), Err(SelectorError::MissingValues { .. })));

        let extra_values = selector(&[], vec![expr("env", "Exists", &["prod"])]);
        assert!(!selector_matches(&extra_values, &labels(&[("env", "prod")])));
        assert!(matches!(validate_selector(&extra_values), Err(SelectorError::UnexpectedValues { .. })));

        let empty_key = selector(&[], vec![expr("", "Exists", &[])]);
        assert_eq!(validate_selector(&empty_key), Err(SelectorError::EmptyKey));

        assert_eq!(validate_selector(&selector(&[("a", "b")], vec![expr("env", "In", &["x"])])), Ok(()));
    }
}
