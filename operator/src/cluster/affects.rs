//! Which workloads a change can affect. Pure functions over old/new objects and the index, so
//! they are unit-tested without a cluster. Coarse where precision would cost more than it
//! saves (a namespace-scoped object re-evaluates its namespace's workloads; a StorageClass or a
//! BackupStorageLocation, which change rarely, re-evaluate everything).

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::DynamicObject;

use super::ClusterIndex;
use crate::context::Workload;
use crate::model::{WorkloadKind, WorkloadRef};

/// What a change touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affected {
    Nothing,
    Workload(WorkloadRef),
    Namespace(String),
    Namespaces(BTreeSet<String>),
    Workloads(BTreeSet<WorkloadRef>),
    All,
}

/// The namespaces whose workloads a set of RBAC subjects can run as.
fn subject_namespaces<'a>(subjects: impl Iterator<Item = &'a Subject>) -> Affected {
    let mut namespaces = BTreeSet::new();
    for s in subjects {
        match s.kind.as_str() {
            "ServiceAccount" => {
                if let Some(ns) = &s.namespace {
                    namespaces.insert(ns.clone());
                }
            }
            "Group" if s.name == "system:serviceaccounts" || s.name == "system:authenticated" => return Affected::All,
            "Group" => {
                if let Some(ns) = s.name.strip_prefix("system:serviceaccounts:") {
                    namespaces.insert(ns.to_owned());
                }
            }
            _ => {}
        }
    }
    if namespaces.is_empty() { Affected::Nothing } else { Affected::Namespaces(namespaces) }
}

/// A ClusterRoleBinding: the namespaces of its subjects, before and after.
pub fn cluster_role_binding(old: Option<&ClusterRoleBinding>, new: Option<&ClusterRoleBinding>) -> Affected {
    let subjects = old.into_iter().chain(new).flat_map(|b| b.subjects.iter().flatten());
    subject_namespaces(subjects)
}

/// A ClusterRole: whoever is bound to it (by a ClusterRoleBinding or a RoleBinding). Roles that
/// aggregate or are aggregated change other roles' rules, so those re-evaluate everything.
pub fn cluster_role(index: &ClusterIndex, old: Option<&ClusterRole>, new: Option<&ClusterRole>) -> Affected {
    let aggregating = |r: &ClusterRole| {
        r.aggregation_rule.is_some()
            || r.metadata.labels.iter().flatten().any(|(k, _)| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
    };
    if old.into_iter().chain(new).any(aggregating) {
        return Affected::All;
    }
    let Some(name) = old.or(new).and_then(|r| r.metadata.name.clone()) else { return Affected::Nothing };
    let mut namespaces = BTreeSet::new();
    for crb in index.cluster_role_bindings.list() {
        if crb.role_ref.kind == "ClusterRole" && crb.role_ref.name == name {
            match subject_namespaces(crb.subjects.iter().flatten()) {
                Affected::All => return Affected::All,
                Affected::Namespaces(n) => namespaces.extend(n),
                _ => {}
            }
        }
    }
    for rb in index.role_bindings.list() {
        if rb.role_ref.kind == "ClusterRole"
            && rb.role_ref.name == name
            && let Some(ns) = &rb.metadata.namespace
        {
            namespaces.insert(ns.clone());
        }
    }
    if namespaces.is_empty() { Affected::Nothing } else { Affected::Namespaces(namespaces) }
}

/// A Velero Schedule: the namespaces it includes, before and after (all when unrestricted).
pub fn velero_schedule(old: Option<&DynamicObject>, new: Option<&DynamicObject>) -> Affected {
    let mut namespaces = BTreeSet::new();
    for s in old.into_iter().chain(new) {
        let included = s.data.pointer("/spec/template/includedNamespaces").and_then(|v| v.as_array());
        match included {
            None => return Affected::All,
            Some(list) if list.is_empty() => return Affected::All,
            Some(list) => {
                for ns in list.iter().filter_map(|v| v.as_str()) {
                    if ns == "*" {
                        return Affected::All;
                    }
                    namespaces.insert(ns.to_owned());
                }
            }
        }
    }
    if namespaces.is_empty() { Affected::Nothing } else { Affected::Namespaces(namespaces) }
}

/// Workloads of `namespace` whose pods (or pod specs) satisfy `pred`.
fn workloads_where(index: &ClusterIndex, namespace: &str, pred: impl Fn(&Workload) -> bool) -> Affected {
    let mut out = BTreeSet::new();
    for kind in WorkloadKind::ALL {
        for w in index.workload_store(kind).list_namespace(namespace) {
            if pred(&w) {
                out.insert(w.reference());
            }
        }
    }
    if out.is_empty() { Affected::Nothing } else { Affected::Workloads(out) }
}

/// A PodDisruptionBudget or NetworkPolicy: the workloads whose pods its selector selects, before
/// or after the change (an empty selector selects every pod in the namespace).
pub fn pod_selector(index: &ClusterIndex, namespace: &str, selectors: &[Option<&LabelSelector>]) -> Affected {
    workloads_where(index, namespace, |w| {
        selectors.iter().any(|s| s.is_none_or(|s| crate::context::selector::matches(s, &w.pod_labels)))
    })
}

/// A Service: the workloads whose pods it selects (Ingresses reach workloads through Services).
pub fn service(index: &ClusterIndex, namespace: &str, selectors: &[Option<&BTreeMap<String, String>>]) -> Affected {
    workloads_where(index, namespace, |w| {
        selectors.iter().any(|s| crate::context::selector::service_selects(*s, &w.pod_labels))
    })
}

/// A PersistentVolumeClaim: the workloads that mount it by name, and StatefulSets (their claims
/// come from templates, named `<template>-<statefulset>-<ordinal>`).
pub fn claim(index: &ClusterIndex, namespace: &str, name: &str) -> Affected {
    workloads_where(index, namespace, |w| {
        w.kind == WorkloadKind::StatefulSet || w.claim_names.iter().any(|c| c == name)
    })
}

/// A ServiceAccount: the workloads that run as it.
pub fn service_account(index: &ClusterIndex, namespace: &str, name: &str) -> Affected {
    workloads_where(index, namespace, |w| w.service_account == name)
}

/// A RoleBinding: the workloads running as one of its ServiceAccount subjects (before or after);
/// group subjects fall back to the whole namespace.
pub fn role_binding(
    index: &ClusterIndex,
    namespace: &str,
    old: Option<&RoleBinding>,
    new: Option<&RoleBinding>,
) -> Affected {
    let mut accounts = BTreeSet::new();
    for s in old.into_iter().chain(new).flat_map(|b| b.subjects.iter().flatten()) {
        match s.kind.as_str() {
            "ServiceAccount" if s.namespace.as_deref().unwrap_or(namespace) == namespace => {
                accounts.insert(s.name.clone());
            }
            "ServiceAccount" | "User" => {}
            _ => return Affected::Namespace(namespace.to_owned()),
        }
    }
    workloads_where(index, namespace, |w| accounts.contains(&w.service_account))
}

/// A namespaced object the builder reads per namespace (ServiceAccount, RoleBinding, PVC,
/// Service, ...): that namespace's workloads.
pub fn namespaced(namespace: &str) -> Affected {
    Affected::Namespace(namespace.to_owned())
}

/// An Istio PeerAuthentication: in the mesh root namespace it applies mesh-wide.
pub fn peer_authentication(namespace: &str) -> Affected {
    if namespace == "istio-system" { Affected::All } else { Affected::Namespace(namespace.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crb(subjects: serde_json::Value, role: &str) -> ClusterRoleBinding {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b"}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
        }))
        .unwrap()
    }

    #[test]
    fn bindings_affect_their_subjects_namespaces() {
        let old = crb(serde_json::json!([{"kind": "ServiceAccount", "name": "a", "namespace": "crm"}]), "view");
        let new = crb(serde_json::json!([{"kind": "Group", "name": "system:serviceaccounts:billing"}]), "view");
        assert_eq!(
            cluster_role_binding(Some(&old), Some(&new)),
            Affected::Namespaces(["billing".to_owned(), "crm".to_owned()].into())
        );
        let all = crb(serde_json::json!([{"kind": "Group", "name": "system:serviceaccounts"}]), "view");
        assert_eq!(cluster_role_binding(None, Some(&all)), Affected::All);
        let user = crb(serde_json::json!([{"kind": "User", "name": "alice"}]), "view");
        assert_eq!(cluster_role_binding(None, Some(&user)), Affected::Nothing);
    }

    #[test]
    fn cluster_role_changes_reach_bound_namespaces_only() {
        let index = ClusterIndex::default();
        let b = crb(serde_json::json!([{"kind": "ServiceAccount", "name": "a", "namespace": "crm"}]), "crm-reader");
        index.cluster_role_bindings.apply((String::new(), "b".into()), b);
        let role: ClusterRole =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "crm-reader"}})).unwrap();
        assert_eq!(cluster_role(&index, None, Some(&role)), Affected::Namespaces(["crm".to_owned()].into()));
        let other: ClusterRole = serde_json::from_value(serde_json::json!({"metadata": {"name": "other"}})).unwrap();
        assert_eq!(cluster_role(&index, None, Some(&other)), Affected::Nothing);
        let agg: ClusterRole = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}
        }))
        .unwrap();
        assert_eq!(cluster_role(&index, None, Some(&agg)), Affected::All);
    }

    #[test]
    fn schedules_affect_included_namespaces() {
        let s = |inc: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "s", "namespace": "velero"},
                "spec": {"schedule": "0 2 * * *", "template": {"includedNamespaces": inc}}
            }))
            .unwrap()
        };
        assert_eq!(
            velero_schedule(None, Some(&s(serde_json::json!(["crm"])))),
            Affected::Namespaces(["crm".to_owned()].into())
        );
        assert_eq!(velero_schedule(None, Some(&s(serde_json::json!(["*"])))), Affected::All);
        assert_eq!(velero_schedule(None, Some(&s(serde_json::json!([])))), Affected::All);
        assert_eq!(peer_authentication("istio-system"), Affected::All);
    }

    #[test]
    fn selectors_and_accounts_narrow_a_change_to_the_workloads_it_reaches() {
        let index = ClusterIndex::default();
        for (name, sa) in [("web", "web-sa"), ("db", "default")] {
            let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "crm"},
                "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"serviceAccountName": sa, "containers": [],
                             "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": format!("{name}-data")}}]}}}
            }))
            .unwrap();
            index.deployments.apply(("crm".into(), name.into()), Workload::from_deployment(&d).unwrap());
        }
        let web = || {
            Affected::Workloads(
                [WorkloadRef { kind: WorkloadKind::Deployment, namespace: "crm".into(), name: "web".into() }].into(),
            )
        };
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({"matchLabels": {"app": "web"}})).unwrap();
        assert_eq!(pod_selector(&index, "crm", &[Some(&sel)]), web());
        let svc: BTreeMap<String, String> = [("app".to_owned(), "web".to_owned())].into();
        assert_eq!(service(&index, "crm", &[Some(&svc)]), web());
        assert_eq!(claim(&index, "crm", "web-data"), web());
        assert_eq!(service_account(&index, "crm", "web-sa"), web());
        assert_eq!(pod_selector(&index, "other", &[Some(&sel)]), Affected::Nothing);
        let rb: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rb", "namespace": "crm"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "web-sa"}]
        }))
        .unwrap();
        assert_eq!(role_binding(&index, "crm", None, Some(&rb)), web());
        // An empty selector selects every pod of the namespace.
        assert!(matches!(pod_selector(&index, "crm", &[None]), Affected::Workloads(w) if w.len() == 2));
    }
}
