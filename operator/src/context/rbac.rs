//! What the workload's ServiceAccount may do: the bindings that name it, resolved to rules.
//!
//! A binding applies to the ServiceAccount when a subject is, in RBAC's own terms, that account:
//! - `ServiceAccount` with its name and namespace (in a RoleBinding a missing namespace is read
//!   as the binding's own, which is how such manifests are usually meant);
//! - `User` `system:serviceaccount:<ns>:<name>` (the account's user name);
//! - `Group` `system:serviceaccounts`, `system:serviceaccounts:<ns>` or `system:authenticated`
//!   (every ServiceAccount token authenticates into these groups, so a `cluster-admin` binding
//!   to `system:authenticated` is exactly the kind of thing rules must see).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};

use super::document::{BindingInfo, Rbac, RoleRefInfo, RuleInfo};
use super::objects::ObjectSource;
use super::reach::Scope;
use super::selector;

pub(crate) fn rbac(namespace: &str, service_account: &str, src: &dyn ObjectSource) -> Rbac {
    let mut bindings = Vec::new();
    for rb in src.role_bindings(namespace) {
        let binding_ns = rb.metadata.namespace.as_deref().unwrap_or(namespace);
        if !applies(rb.subjects.as_deref(), Some(binding_ns), namespace, service_account) {
            continue;
        }
        let (found, rules) = match rb.role_ref.kind.as_str() {
            "Role" => match src.role(binding_ns, &rb.role_ref.name) {
                Some(role) => (true, rules_of(role.rules.as_deref())),
                None => (false, Vec::new()),
            },
            "ClusterRole" => cluster_role_rules(&rb.role_ref, src),
            _ => (false, Vec::new()),
        };
        bindings.push(binding(
            "RoleBinding",
            rb.metadata.name.as_deref(),
            Some(binding_ns),
            &rb.role_ref,
            found,
            rules,
        ));
    }
    for crb in src.cluster_role_bindings_for(namespace, service_account) {
        if !applies(crb.subjects.as_deref(), None, namespace, service_account) {
            continue;
        }
        // A ClusterRoleBinding can only reference a ClusterRole.
        let (found, rules) = match crb.role_ref.kind.as_str() {
            "ClusterRole" => cluster_role_rules(&crb.role_ref, src),
            _ => (false, Vec::new()),
        };
        bindings.push(binding("ClusterRoleBinding", crb.metadata.name.as_deref(), None, &crb.role_ref, found, rules));
    }
    Rbac { bindings }
}

fn binding(
    kind: &str,
    name: Option<&str>,
    namespace: Option<&str>,
    role_ref: &RoleRef,
    role_found: bool,
    rules: Vec<RuleInfo>,
) -> BindingInfo {
    BindingInfo {
        kind: kind.to_string(),
        name: name.unwrap_or_default().to_string(),
        namespace: namespace.map(str::to_string),
        role_ref: RoleRefInfo { kind: role_ref.kind.clone(), name: role_ref.name.clone() },
        role_found,
        cluster_wide: kind == "ClusterRoleBinding",
        rules,
    }
}

/// Does any subject denote the ServiceAccount `sa_namespace/sa_name`? `binding_namespace` is the
/// RoleBinding's namespace (`None` for ClusterRoleBindings).
fn applies(subjects: Option<&[Subject]>, binding_namespace: Option<&str>, sa_namespace: &str, sa_name: &str) -> bool {
    subjects.unwrap_or_default().iter().any(|s| match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).or(binding_namespace);
            s.name == sa_name && ns == Some(sa_namespace)
        }
        // `system:serviceaccount:<sa_namespace>:<sa_name>`, compared in place (every workload
        // looks at every ClusterRoleBinding: no allocation per subject).
        "User" => {
            s.name
                .strip_prefix("system:serviceaccount:")
                .and_then(|rest| rest.strip_prefix(sa_namespace))
                .and_then(|rest| rest.strip_prefix(':'))
                == Some(sa_name)
        }
        "Group" => {
            s.name == "system:serviceaccounts"
                || s.name == "system:authenticated"
                || s.name.strip_prefix("system:serviceaccounts:") == Some(sa_namespace)
        }
        _ => false,
    })
}

/// The ServiceAccounts and namespaces a ClusterRoleBinding can bind, for
/// [`Reach`](super::reach::Reach): exactly the accounts [`applies`] would accept, as
/// [`service_account_keys`] name them.
pub(crate) fn cluster_binding_scope(crb: &ClusterRoleBinding) -> Scope {
    let mut keys = Vec::new();
    for s in crb.subjects.iter().flatten() {
        match s.kind.as_str() {
            // Without a namespace it names no account (a ClusterRoleBinding has none to lend).
            "ServiceAccount" => {
                if let Some(ns) = s.namespace.as_deref().filter(|n| !n.is_empty()) {
                    keys.push(account_key(ns, &s.name));
                }
            }
            // `<ns>:<name>`: every split at a colon, as `applies` tries the account's own.
            "User" => {
                if let Some(rest) = s.name.strip_prefix("system:serviceaccount:") {
                    keys.extend(rest.match_indices(':').map(|(i, _)| account_key(&rest[..i], &rest[i + 1..])));
                }
            }
            "Group" if s.name == "system:serviceaccounts" || s.name == "system:authenticated" => {
                return Scope::Everywhere;
            }
            "Group" => {
                if let Some(ns) = s.name.strip_prefix("system:serviceaccounts:") {
                    keys.push(super::backup::namespace_key(ns));
                }
            }
            _ => {}
        }
    }
    Scope::Keys(keys)
}

/// The [`Reach`](super::reach::Reach) keys a ClusterRoleBinding of ServiceAccount
/// `namespace/name` is filed under: the account's and its namespace's.
pub(crate) fn service_account_keys(namespace: &str, name: &str) -> [String; 2] {
    [account_key(namespace, name), super::backup::namespace_key(namespace)]
}

fn account_key(namespace: &str, name: &str) -> String {
    format!("sa\0{namespace}\0{name}")
}

/// The rules of a ClusterRole, with aggregation resolved.
fn cluster_role_rules(role_ref: &RoleRef, src: &dyn ObjectSource) -> (bool, Vec<RuleInfo>) {
    match src.cluster_role(&role_ref.name) {
        Some(role) => (true, aggregated_rules(&role, src)),
        None => (false, Vec::new()),
    }
}

/// A ClusterRole's rules; for an aggregated role, its own rules (in a cluster the aggregation
/// controller has already copied the selected roles' rules there) plus the rules of every
/// ClusterRole its `clusterRoleSelectors` select, recursively (in manifests nothing has filled
/// them in yet), without duplicates and in first-seen order.
pub(crate) fn aggregated_rules(role: &ClusterRole, src: &dyn ObjectSource) -> Vec<RuleInfo> {
    let mut seen_rules = HashSet::new();
    let mut rules = Vec::new();
    let mut push = |r: RuleInfo| {
        if seen_rules.insert(r.clone()) {
            rules.push(r);
        }
    };
    rules_of(role.rules.as_deref()).into_iter().for_each(&mut push);
    if role.aggregation_rule.is_none() {
        return rules;
    }

    // Breadth-first over aggregated roles, each visited once (cycles are possible in manifests).
    let all = src.cluster_roles();
    let mut visited: HashSet<String> = HashSet::from([role.metadata.name.clone().unwrap_or_default()]);
    let mut queue = VecDeque::new();
    select_aggregated(role, &all, &mut queue, &mut visited);
    while let Some(selected) = queue.pop_front() {
        rules_of(selected.rules.as_deref()).into_iter().for_each(&mut push);
        if selected.aggregation_rule.is_some() {
            select_aggregated(&selected, &all, &mut queue, &mut visited);
        }
    }
    rules
}

/// Queue the not yet visited ClusterRoles that `aggregating`'s selectors pick out of `all`.
fn select_aggregated(
    aggregating: &ClusterRole,
    all: &[Arc<ClusterRole>],
    queue: &mut VecDeque<Arc<ClusterRole>>,
    visited: &mut HashSet<String>,
) {
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    let selectors = aggregating.aggregation_rule.as_ref().and_then(|a| a.cluster_role_selectors.as_deref());
    for candidate in all {
        let name = candidate.metadata.name.as_deref().unwrap_or_default();
        let labels = candidate.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        // An aggregation rule with no selectors selects nothing (unlike an empty selector).
        if !visited.contains(name) && selectors.unwrap_or_default().iter().any(|s| selector::matches(s, labels)) {
            visited.insert(name.to_string());
            queue.push_back(candidate.clone());
        }
    }
}

fn rules_of(rules: Option<&[PolicyRule]>) -> Vec<RuleInfo> {
    rules
        .unwrap_or_default()
        .iter()
        .map(|r| RuleInfo {
            api_groups: r.api_groups.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
            verbs: r.verbs.clone(),
            resource_names: r.resource_names.clone().unwrap_or_default(),
            non_resource_urls: r.non_resource_urls.clone().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::context::ObjectSet;

    fn set(values: Vec<serde_json::Value>) -> ObjectSet {
        ObjectSet::from_values(values).unwrap()
    }

    /// Filing a ClusterRoleBinding by ServiceAccount and namespace must never hide it from an
    /// account it binds: every subject shape `applies` knows, against accounts that match and
    /// accounts that only nearly do.
    #[test]
    fn cluster_bindings_are_filed_under_every_account_they_bind() {
        let subject = |kind: &str, name: &str, namespace: Option<&str>| Subject {
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            api_group: None,
        };
        let subjects = [
            subject("ServiceAccount", "web", Some("crm")),
            subject("ServiceAccount", "web", None),
            subject("ServiceAccount", "web", Some("")),
            subject("ServiceAccount", "web", Some("crm-prod")),
            subject("User", "system:serviceaccount:crm:web", None),
            subject("User", "system:serviceaccount:crm:we", None),
            subject("User", "system:serviceaccount:crm:web:x", None),
            subject("User", "system:serviceaccount:crm", None),
            subject("User", "alice", None),
            subject("Group", "system:serviceaccounts:crm", None),
            subject("Group", "system:serviceaccounts:crm-prod", None),
            subject("Group", "system:serviceaccounts", None),
            subject("Group", "system:authenticated", None),
            subject("Group", "admins", None),
        ];
        let accounts = [("crm", "web"), ("crm", "we"), ("crm", "web:x"), ("crm-prod", "web"), ("other", "web")];
        let (mut bound, mut filed_away) = (0, 0);
        // Every pair of subjects, so bindings with mixed scopes are covered too.
        for a in &subjects {
            for b in &subjects {
                let crb = ClusterRoleBinding { subjects: Some(vec![a.clone(), b.clone()]), ..Default::default() };
                let scope = cluster_binding_scope(&crb);
                for (ns, name) in accounts {
                    let candidate = match &scope {
                        Scope::Everywhere => true,
                        Scope::Keys(keys) => service_account_keys(ns, name).iter().any(|k| keys.contains(k)),
                    };
                    if applies(crb.subjects.as_deref(), None, ns, name) {
                        bound += 1;
                        assert!(candidate, "{:?} binds {ns}/{name} but is filed under {scope:?}", crb.subjects);
                    } else if !candidate {
                        filed_away += 1;
                    }
                }
            }
        }
        assert!(bound > 50 && filed_away > 50, "{bound} bound, {filed_away} filed away");
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> RuleInfo {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
        RuleInfo {
            api_groups: v(groups),
            resources: v(resources),
            verbs: v(verbs),
            resource_names: vec![],
            non_resource_urls: vec![],
        }
    }

    #[test]
    fn role_bindings_and_cluster_role_bindings_by_service_account() {
        let s = set(vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "reader", "namespace": "crm"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "app-reader", "namespace": "crm"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "crm"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "other", "namespace": "crm"},
                "roleRef": {"kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": "crm"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "missing-role", "namespace": "crm"},
                "roleRef": {"kind": "Role", "name": "nope"},
                "subjects": [{"kind": "ServiceAccount", "name": "app"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "cluster-admin"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "crm-admin"},
                "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "crm"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "elsewhere"},
                "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "other"}]}),
        ]);
        let r = rbac("crm", "app", &s);
        let names: Vec<_> = r.bindings.iter().map(|b| (b.kind.as_str(), b.name.as_str(), b.role_found)).collect();
        assert_eq!(
            names,
            [
                ("RoleBinding", "app-reader", true),
                ("RoleBinding", "missing-role", false),
                ("ClusterRoleBinding", "crm-admin", true)
            ]
        );
        assert_eq!(r.bindings[0].rules, [rule(&[""], &["configmaps"], &["get"])]);
        assert!(!r.bindings[0].cluster_wide);
        assert_eq!(r.bindings[0].namespace.as_deref(), Some("crm"));
        assert!(r.bindings[2].cluster_wide);
        assert_eq!(r.bindings[2].namespace, None);
        assert_eq!(r.bindings[2].rules, [rule(&["*"], &["*"], &["*"])]);
    }

    #[test]
    fn group_and_user_subjects() {
        let crb = |name: &str, kind: &str, subject: &str| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": kind, "name": subject}]})
        };
        let s = set(vec![
            crb("all-sa", "Group", "system:serviceaccounts"),
            crb("ns-sa", "Group", "system:serviceaccounts:crm"),
            crb("other-ns-sa", "Group", "system:serviceaccounts:other"),
            crb("authenticated", "Group", "system:authenticated"),
            crb("user", "User", "system:serviceaccount:crm:app"),
            crb("other-user", "User", "system:serviceaccount:crm:other"),
            crb("people", "Group", "developers"),
        ]);
        let names: Vec<_> = rbac("crm", "app", &s).bindings.into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["all-sa", "authenticated", "ns-sa", "user"]);
    }

    /// `applies` as first written (a `match` on the kind, the user name built with `format!`).
    fn applies_by_kind(
        subjects: &[Subject],
        binding_namespace: Option<&str>,
        sa_namespace: &str,
        sa_name: &str,
    ) -> bool {
        subjects.iter().any(|s| match s.kind.as_str() {
            "ServiceAccount" => {
                let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).or(binding_namespace);
                s.name == sa_name && ns == Some(sa_namespace)
            }
            "User" => s.name.strip_prefix("system:serviceaccount:") == Some(&format!("{sa_namespace}:{sa_name}")),
            "Group" => {
                s.name == "system:serviceaccounts"
                    || s.name == "system:authenticated"
                    || s.name.strip_prefix("system:serviceaccounts:") == Some(sa_namespace)
            }
            _ => false,
        })
    }

    #[test]
    fn subjects_are_judged_as_by_kind() {
        let kinds = ["ServiceAccount", "User", "Group", "serviceaccount", "", "Other"];
        let names = [
            "app",
            "default",
            "ap",
            "system:serviceaccount:crm:app",
            "system:serviceaccount:crm:default",
            "system:serviceaccount:other:app",
            "system:serviceaccounts",
            "system:serviceaccounts:crm",
            "system:serviceaccounts:other",
            "system:authenticated",
            "",
        ];
        let namespaces = [None, Some(""), Some("crm"), Some("other")];
        let mut checked = 0;
        for kind in kinds {
            for name in names {
                for namespace in namespaces {
                    let subject = [Subject {
                        kind: kind.into(),
                        name: name.into(),
                        namespace: namespace.map(Into::into),
                        ..Default::default()
                    }];
                    for binding_ns in [None, Some("crm"), Some("other")] {
                        for (sa_ns, sa) in [("crm", "app"), ("crm", "default"), ("other", "app"), ("crm", "")] {
                            assert_eq!(
                                applies(Some(&subject), binding_ns, sa_ns, sa),
                                applies_by_kind(&subject, binding_ns, sa_ns, sa),
                                "{subject:?} in {binding_ns:?} for {sa_ns}/{sa}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 11 * 4 * 3 * 4);
    }

    #[test]
    fn user_subjects_name_exactly_the_account() {
        let user = |name: &str| Subject { kind: "User".into(), name: name.into(), ..Default::default() };
        let applies_to = |name: &str, ns: &str, sa: &str| applies(Some(&[user(name)]), None, ns, sa);
        assert!(applies_to("system:serviceaccount:crm:app", "crm", "app"));
        assert!(!applies_to("system:serviceaccount:crm:app2", "crm", "app"));
        assert!(!applies_to("system:serviceaccount:crm:ap", "crm", "app"));
        assert!(!applies_to("system:serviceaccount:crm:app:x", "crm", "app"));
        assert!(!applies_to("system:serviceaccount:crmx:app", "crm", "app"));
        assert!(!applies_to("system:serviceaccount:crm", "crm", "app"));
        assert!(!applies_to("system:serviceaccount:crmapp", "crm", "app"));
        assert!(!applies_to("system:serviceaccounts:crm:app", "crm", "app"));
        assert!(!applies_to("system:serviceaccount::app", "crm", "app"));
        assert!(applies_to("system:serviceaccount::", "", ""));
        // The user name is `<namespace>:<name>` however the colons fall.
        assert!(applies_to("system:serviceaccount:a:b:c", "a", "b:c"));
        assert!(applies_to("system:serviceaccount:a:b:c", "a:b", "c"));
    }

    #[test]
    fn aggregated_cluster_roles_are_resolved() {
        let s = set(vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "monitoring"},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "monitoring-endpoints", "labels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                          {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["list"]}]}),
            // Nested: selected by `monitoring`, aggregates `secrets-reader` in turn.
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "monitoring-nested", "labels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"nested": "true"}}]}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "secrets-reader", "labels": {"nested": "true"}},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "unrelated"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "mon", "namespace": "crm"},
                "roleRef": {"kind": "ClusterRole", "name": "monitoring"},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "crm"}]}),
        ]);
        let r = rbac("crm", "default", &s);
        assert_eq!(r.bindings.len(), 1);
        let b = &r.bindings[0];
        assert!(b.role_found && !b.cluster_wide, "a RoleBinding to a ClusterRole applies in one namespace");
        assert_eq!(
            b.rules,
            [
                rule(&[""], &["pods"], &["get"]),
                rule(&[""], &["endpoints"], &["list"]),
                rule(&[""], &["secrets"], &["list"])
            ]
        );
    }

    #[test]
    fn aggregation_cycles_terminate() {
        let s = set(vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "a", "labels": {"x": "1"}},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "1"}}]},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "b", "labels": {"x": "1"}},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "1"}}]}}),
        ]);
        let a = s.cluster_role("a").unwrap();
        assert_eq!(aggregated_rules(&a, &s), [rule(&[""], &["pods"], &["get"])]);
    }
}
