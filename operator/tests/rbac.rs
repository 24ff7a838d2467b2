//! The shipped RBAC stays least-privilege: parsed into the real Kubernetes types, so a typo in
//! a field name fails here rather than silently granting nothing (or too much) in a cluster.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding};
use serde::Deserialize;

const READ: [&str; 3] = ["get", "list", "watch"];

fn rbac_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/crm-risk-operator/files").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cluster_role() -> ClusterRole {
    serde_yaml_ng::from_str(&rbac_file("clusterrole.yaml")).expect("clusterrole.yaml is a ClusterRole")
}

fn rules(role: &ClusterRole) -> &[PolicyRule] {
    role.rules.as_deref().unwrap_or_default()
}

/// Every (apiGroup, resource) pair granted `verb`.
fn granted(rules: &[PolicyRule], verb: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.iter().filter(|r| r.verbs.iter().any(|v| v == verb)) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                out.insert((group.clone(), resource.clone()));
            }
        }
    }
    out
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(g, r)| ((*g).to_owned(), (*r).to_owned())).collect()
}

#[test]
fn cluster_role_is_named_and_well_formed() {
    let role = cluster_role();
    assert_eq!(role.metadata.name.as_deref(), Some("crm-risk-operator"));
    assert!(role.aggregation_rule.is_none(), "an aggregated role could grow beyond this file");
    for rule in rules(&role) {
        assert!(rule.api_groups.as_ref().is_some_and(|g| !g.is_empty()), "rule without apiGroups: {rule:?}");
        assert!(rule.resources.as_ref().is_some_and(|r| !r.is_empty()), "rule without resources: {rule:?}");
        assert!(rule.non_resource_urls.is_none(), "non-resource URLs are not needed: {rule:?}");
        assert!(rule.resource_names.is_none(), "unexpected resourceNames: {rule:?}");
    }
}

#[test]
fn no_secrets_and_no_wildcards() {
    let role = cluster_role();
    for rule in rules(&role) {
        let resources = rule.resources.iter().flatten();
        let everything = rule.api_groups.iter().flatten().chain(resources.clone()).chain(rule.verbs.iter());
        for item in everything {
            assert!(!item.contains('*'), "wildcard {item:?} in {rule:?}");
        }
        for resource in resources {
            assert!(!resource.to_ascii_lowercase().contains("secret"), "rule on secrets: {rule:?}");
        }
        for verb in &rule.verbs {
            assert!(!["bind", "escalate", "impersonate"].contains(&verb.as_str()), "privilege verb {verb}");
        }
    }
    // Belt and braces: the word does not appear outside comments either.
    let text: String = rbac_file("clusterrole.yaml")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!text.to_ascii_lowercase().contains("secret"));
}

#[test]
fn writes_only_on_what_the_operator_owns() {
    let role = cluster_role();
    let writable = pairs(&[
        ("crmrisk.io", "crmriskreports"),
        ("crmrisk.io", "crmriskpolicies/status"),
        ("events.k8s.io", "events"),
        ("wgpolicyk8s.io", "policyreports"),
        ("openreports.io", "reports"),
    ]);
    for rule in rules(&role) {
        let writes: Vec<&String> = rule.verbs.iter().filter(|v| !READ.contains(&v.as_str())).collect();
        if writes.is_empty() {
            continue;
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                assert!(
                    writable.contains(&(group.clone(), resource.clone())),
                    "write verbs {writes:?} on {group}/{resource}"
                );
            }
        }
    }
    let all_rules = rules(&role);
    assert!(granted(all_rules, "delete").contains(&("crmrisk.io".to_owned(), "crmriskreports".to_owned())));
    assert!(granted(all_rules, "patch").contains(&("crmrisk.io".to_owned(), "crmriskpolicies/status".to_owned())));
    assert!(granted(all_rules, "create").contains(&("events.k8s.io".to_owned(), "events".to_owned())));
    // The operator never changes a policy (only its status) or an exception.
    for verb in ["create", "update", "patch", "delete"] {
        let g = granted(all_rules, verb);
        assert!(!g.contains(&("crmrisk.io".to_owned(), "crmriskpolicies".to_owned())), "{verb} on policies");
        assert!(!g.contains(&("crmrisk.io".to_owned(), "crmriskexceptions".to_owned())), "{verb} on exceptions");
    }
}

#[test]
fn everything_the_operator_reads_is_readable() {
    let role = cluster_role();
    let needed = pairs(&[
        ("", "namespaces"),
        ("", "serviceaccounts"),
        ("", "persistentvolumeclaims"),
        ("", "services"),
        ("", "configmaps"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "cronjobs"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("storage.k8s.io", "storageclasses"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "networkpolicies"),
        ("policy", "poddisruptionbudgets"),
        ("crmrisk.io", "crmriskpolicies"),
        ("crmrisk.io", "crmriskexceptions"),
        ("crmrisk.io", "crmriskreports"),
        ("velero.io", "schedules"),
        ("velero.io", "backupstoragelocations"),
        ("postgresql.cnpg.io", "clusters"),
        ("postgresql.cnpg.io", "scheduledbackups"),
        ("security.istio.io", "peerauthentications"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("wgpolicyk8s.io", "policyreports"),
        ("openreports.io", "reports"),
    ]);
    for verb in READ {
        let readable = granted(rules(&role), verb);
        let missing: Vec<_> = needed.difference(&readable).collect();
        assert!(missing.is_empty(), "cannot {verb}: {missing:?}");
    }
}

#[test]
fn lease_role_is_namespace_free_and_limited_to_leases() {
    let text = rbac_file("lease-role.yaml");
    let mut role = None;
    let mut binding = None;
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(document).expect("valid YAML");
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("Role") => role = Some(serde_yaml_ng::from_value::<Role>(value).expect("a Role")),
            Some("RoleBinding") => {
                binding = Some(serde_yaml_ng::from_value::<RoleBinding>(value).expect("a RoleBinding"))
            }
            other => panic!("unexpected document kind {other:?}"),
        }
    }
    let role = role.expect("lease-role.yaml has a Role");
    let binding = binding.expect("lease-role.yaml has a RoleBinding");
    assert!(role.metadata.namespace.is_none() && binding.metadata.namespace.is_none(), "apply with -n instead");
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(binding.role_ref.name.as_str()), role.metadata.name.as_deref());

    for rule in role.rules.iter().flatten() {
        assert_eq!(rule.api_groups.as_deref(), Some(&["coordination.k8s.io".to_owned()][..]));
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_owned()][..]));
        // Everything but create is limited to the operator's own Lease.
        if rule.verbs.iter().any(|v| v != "create") {
            assert_eq!(rule.resource_names.as_deref(), Some(&[crmrisk::leader::DEFAULT_LEASE_NAME.to_owned()][..]));
        }
    }
    for verb in ["get", "create", "update"] {
        assert!(role.rules.iter().flatten().any(|r| r.verbs.iter().any(|v| v == verb)), "{verb} missing");
    }
}
