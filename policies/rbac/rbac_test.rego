package crmrisk.rbac_test

import rego.v1

import data.crmrisk.fixtures_test as fx
import data.crmrisk.rbac

run(inp) := fs if {
	fs := rbac.findings with input as inp
}

ids(inp) := {f.id | some f in run(inp)}

fired(id, inp) := [f |
	some f in run(inp)
	f.id == id
]

fires(id, inp) if count(fired(id, inp)) > 0

one(id, inp, words) if {
	fs := fired(id, inp)
	print(id, fs)
	count(fs) == 1
	every w in words {
		contains(fs[0].message, w)
	}
}

silent(id, inp) if {
	print(id, ids(inp))
	not fires(id, inp)
}

rule(groups, resources, verbs) := {
	"apiGroups": groups, "resources": resources, "verbs": verbs,
	"resourceNames": [], "nonResourceURLs": [],
}

cluster_admin_rules := [
	rule(["*"], ["*"], ["*"]),
	{"apiGroups": [], "resources": [], "verbs": ["*"], "resourceNames": [], "nonResourceURLs": ["*"]},
]

cluster_binding(name, role, rules) := {
	"kind": "ClusterRoleBinding", "name": name, "namespace": null,
	"roleRef": {"kind": "ClusterRole", "name": role}, "roleFound": true, "clusterWide": true,
	"rules": rules,
}

role_binding(name, role, rules) := {
	"kind": "RoleBinding", "name": name, "namespace": "crm",
	"roleRef": {"kind": "Role", "name": role}, "roleFound": true, "clusterWide": false,
	"rules": rules,
}

# A RoleBinding in crm granting a ClusterRole.
role_binding_to_cluster_role(name, role, rules) := object.union(role_binding(name, role, rules), {"roleRef": {"kind": "ClusterRole"}})

bindings(list) := fx.db({"rbac": {"bindings": list}})

params(inp, p) := object.union(inp, {"params": {"rbac": p}})

sa(p) := fx.db({"serviceAccount": p})

# ---------------------------------------------------------------------------------------------
# hardened inputs
# ---------------------------------------------------------------------------------------------

test_hardened_database_is_clean if {
	print(run(fx.hardened))
	count(run(fx.hardened)) == 0
}

test_hardened_web_is_clean if {
	print(run(fx.hardened_web))
	count(run(fx.hardened_web)) == 0
}

# ---------------------------------------------------------------------------------------------
# RBAC-001 cluster-admin
# ---------------------------------------------------------------------------------------------

admin := bindings([cluster_binding("crm-admin", "cluster-admin", cluster_admin_rules)])

test_rbac001_cluster_role_binding if {
	one("RBAC-001", admin, ["ServiceAccount crm/crm-db", "ClusterRoleBinding crm-admin", "anything cluster-wide"])
	f := fired("RBAC-001", admin)[0]
	not f.impact
	{"kind": "ClusterRoleBinding", "name": "crm-admin"} in f.evidence
	{"kind": "ClusterRole", "name": "cluster-admin"} in f.evidence
	{"kind": "ServiceAccount", "namespace": "crm", "name": "crm-db"} in f.evidence
}

test_rbac001_is_the_only_finding_for_cluster_admin if {
	ids(admin) == {"RBAC-001"}
}

test_rbac001_role_binding_is_namespace_admin if {
	inp := bindings([role_binding_to_cluster_role("crm-admin", "cluster-admin", cluster_admin_rules)])
	one("RBAC-001", inp, ["RoleBinding crm/crm-admin", "in namespace crm"])
	fired("RBAC-001", inp)[0].impact == 4
}

test_rbac001_off_falls_back_to_wildcards if {
	inp := params(admin, {"forbidClusterAdmin": false})
	silent("RBAC-001", inp)
	ids(inp) == {"RBAC-002"}
}

test_rbac001_and_wildcards_off_fall_back_to_secrets_and_escalation if {
	inp := params(admin, {"forbidClusterAdmin": false, "forbidWildcards": false})
	ids(inp) == {"RBAC-003", "RBAC-006"}
}

# ---------------------------------------------------------------------------------------------
# RBAC-002 wildcards
# ---------------------------------------------------------------------------------------------

test_rbac002_wildcard_verbs if {
	inp := bindings([role_binding("crm-db-config", "config-editor", [rule([""], ["configmaps"], ["*"])])])
	one("RBAC-002", inp, ["wildcard permissions in namespace crm", "RoleBinding crm/crm-db-config", "Role config-editor", "* on configmaps"])
	not fired("RBAC-002", inp)[0].impact
}

test_rbac002_wildcard_resources_cluster_wide if {
	inp := bindings([cluster_binding("crm-reader", "reader", [rule(["apps"], ["*"], ["get"])])])
	one("RBAC-002", inp, ["cluster-wide", "get on *"])
	fired("RBAC-002", inp)[0].impact == 5
}

test_rbac002_explicit_rules if {
	silent("RBAC-002", fx.hardened)
}

test_rbac002_off if {
	inp := bindings([role_binding("b", "r", [rule([""], ["configmaps"], ["*"])])])
	silent("RBAC-002", params(inp, {"forbidWildcards": false}))
}

# binding_finding writes out the helpers' forms for the bindings Kubernetes accepts; for every
# combination of binding kind, role kind and scope it must build the finding any_binding_finding
# builds from the helpers.
test_binding_finding_matches_the_helpers if {
	every kind in ["RoleBinding", "ClusterRoleBinding"] {
		every role_kind in ["Role", "ClusterRole", "Other"] {
			every cluster_wide in [false, true] {
				b := {
					"kind": kind, "name": "b", "namespace": "crm",
					"roleRef": {"kind": role_kind, "name": "r"}, "roleFound": true, "clusterWide": cluster_wide,
					"rules": [],
				}
				inp := bindings([b])
				fast := rbac.binding_finding("X", "%s|%s|%s|%s|%s|%s|%s", b, "d") with input as inp
				slow := rbac.any_binding_finding("X", "%s|%s|%s|%s|%s|%s|%s", b, "d") with input as inp
				fast == slow
			}
		}
	}
}

test_rbac002_role_binding_to_cluster_role if {
	inp := bindings([role_binding_to_cluster_role("crm-edit", "edit", [rule([""], ["configmaps"], ["*"])])])
	one("RBAC-002", inp, ["in namespace crm through RoleBinding crm/crm-edit (ClusterRole edit)"])
	f := fired("RBAC-002", inp)[0]
	not f.impact
	f.evidence == [
		{"kind": "ServiceAccount", "namespace": "crm", "name": "crm-db"},
		{"kind": "RoleBinding", "namespace": "crm", "name": "crm-edit"},
		{"kind": "ClusterRole", "name": "edit"},
	]
}

# ---------------------------------------------------------------------------------------------
# RBAC-003 read every Secret
# ---------------------------------------------------------------------------------------------

secret_rules := [rule([""], ["secrets"], ["get", "list"])]

test_rbac003_namespace_secrets if {
	inp := bindings([role_binding("crm-secrets", "secret-reader", secret_rules)])
	one("RBAC-003", inp, ["can read every Secret in namespace crm", "RoleBinding crm/crm-secrets", "get,list on secrets"])
	not fired("RBAC-003", inp)[0].impact
}

test_rbac003_cluster_wide_secrets if {
	inp := bindings([cluster_binding("crm-secrets", "secret-reader", secret_rules)])
	one("RBAC-003", inp, ["cluster-wide", "ClusterRoleBinding crm-secrets"])
	fired("RBAC-003", inp)[0].impact == 5
}

test_rbac003_watch_alone if {
	one("RBAC-003", bindings([role_binding("w", "r", [rule([""], ["secrets"], ["watch"])])]), ["watch on secrets"])
}

test_rbac003_named_secrets_are_fine if {
	named := object.union(rule([""], ["secrets"], ["get"]), {"resourceNames": ["crm-db-credentials"]})
	silent("RBAC-003", bindings([role_binding("b", "r", [named])]))
}

test_rbac003_without_resource_names_field if {
	unnamed := object.remove(rule([""], ["secrets"], ["get"]), ["resourceNames"])
	one("RBAC-003", bindings([role_binding("b", "r", [unnamed])]), ["get on secrets"])
}

test_rbac003_other_group_or_verb if {
	silent("RBAC-003", bindings([role_binding("b", "r", [rule(["apps"], ["secrets"], ["get"])])]))
	silent("RBAC-003", bindings([role_binding("b", "r", [rule([""], ["secrets"], ["create", "update"])])]))
}

test_rbac003_wildcard_reported_once if {
	inp := bindings([role_binding("b", "r", [rule([""], ["*"], ["get"])])])
	ids(inp) == {"RBAC-002"}
	# get on every resource also reaches the kubelet through nodes/proxy
	ids(params(inp, {"forbidWildcards": false})) == {"RBAC-003", "RBAC-006"}
}

# A binding with a wildcard rule is still read by RBAC-003 and RBAC-006 for its other rules.
test_rbac003_and_006_read_the_other_rules_of_a_wildcard_binding if {
	inp := bindings([role_binding("b", "r", [
		rule([""], ["configmaps"], ["*"]),
		rule([""], ["secrets"], ["list"]),
		rule([""], ["pods/exec"], ["create"]),
	])])
	ids(inp) == {"RBAC-002", "RBAC-003", "RBAC-006"}
	one("RBAC-003", inp, ["(Role r: list on secrets)"])
	one("RBAC-006", inp, ["can exec into pods"])
}

test_rbac003_off if {
	silent("RBAC-003", params(bindings([role_binding("b", "r", secret_rules)]), {"forbidSecretReadAll": false}))
}

# ---------------------------------------------------------------------------------------------
# RBAC-004 default ServiceAccount with token
# ---------------------------------------------------------------------------------------------

default_sa := sa({"name": "default", "isDefault": true, "automountToken": true})

test_rbac004_default_service_account_with_token if {
	one("RBAC-004", default_sa, ["default ServiceAccount of namespace crm", "token mounted"])
	{"kind": "ServiceAccount", "namespace": "crm", "name": "default"} in fired("RBAC-004", default_sa)[0].evidence
}

test_rbac004_default_service_account_without_token if {
	silent("RBAC-004", sa({"name": "default", "isDefault": true, "automountToken": false}))
}

test_rbac004_off if {
	silent("RBAC-004", params(default_sa, {"forbidTokenAutomount": false}))
}

# ---------------------------------------------------------------------------------------------
# RBAC-005 unneeded token
# ---------------------------------------------------------------------------------------------

idle_token := fx.db({"serviceAccount": {"automountToken": true}, "rbac": {"bindings": []}})

test_rbac005_token_without_permissions if {
	one("RBAC-005", idle_token, ["ServiceAccount crm/crm-db", "automountServiceAccountToken: false"])
	silent("RBAC-004", idle_token)
}

test_rbac005_token_that_is_used if {
	silent("RBAC-005", fx.db({"serviceAccount": {"automountToken": true}}))
}

test_rbac005_not_for_the_default_service_account if {
	silent("RBAC-005", object.union(idle_token, {"serviceAccount": {"name": "default", "isDefault": true}}))
}

test_rbac005_off if {
	silent("RBAC-005", params(idle_token, {"forbidTokenAutomount": false}))
}

# ---------------------------------------------------------------------------------------------
# RBAC-006 escalation
# ---------------------------------------------------------------------------------------------

test_rbac006_exec_and_create_pods if {
	inp := bindings([role_binding("debug", "debugger", [
		rule([""], ["pods/exec"], ["create", "get"]),
		rule([""], ["pods"], ["create", "delete"]),
	])])
	one("RBAC-006", inp, ["can create pods running as any ServiceAccount of the namespace, exec into pods in namespace crm", "RoleBinding crm/debug"])
}

test_rbac006_escalate_bind_impersonate_cluster_wide if {
	inp := bindings([cluster_binding("ops", "ops", [
		rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["bind", "escalate"]),
		rule([""], ["serviceaccounts"], ["impersonate"]),
	])])
	one("RBAC-006", inp, ["bind any ClusterRole", "escalate ClusterRoles", "impersonate ServiceAccounts", "cluster-wide"])
	fired("RBAC-006", inp)[0].impact == 5
}

test_rbac006_tokens_and_node_proxy if {
	inp := bindings([cluster_binding("n", "n", [
		rule([""], ["serviceaccounts/token"], ["create"]),
		rule([""], ["nodes/proxy"], ["get"]),
	])])
	one("RBAC-006", inp, ["mint ServiceAccount tokens", "nodes/proxy"])
}

test_rbac006_read_only_pods if {
	silent("RBAC-006", bindings([role_binding("r", "r", [rule([""], ["pods", "pods/log", "pods/exec"], ["get", "list"])])]))
}

# escalation_grants is keyed by resource; its `*` entry must hold exactly the other entries'
# grants. A binding with a rule on any of its resources or on Secrets, or with the verb `*` (also
# on no resources), must be among the bindings the three rules review (one on configmaps is not).
test_rbac006_wildcard_grants_are_all_the_grants if {
	{g | some res, gs in rbac.escalation_grants; res != "*"; some g in gs} == {g | some g in rbac.escalation_grants["*"]}
	count(rbac.escalation_grants["*"]) == count({g | some g in rbac.escalation_grants["*"]})
	every res, _ in rbac.escalation_grants {
		reviewed := rbac.reviewed_bindings with input as bindings([role_binding("b", "r", [rule([""], [res], ["get"])])])
		{i | some i, _ in reviewed} == {0}
	}
	secrets := rbac.reviewed_bindings with input as bindings([role_binding("b", "r", [rule([""], ["secrets"], ["get"])])])
	{i | some i, _ in secrets} == {0}
	star := rbac.reviewed_bindings with input as bindings([role_binding("b", "r", [rule([""], ["configmaps"], ["*"])])])
	{i | some i, _ in star} == {0}
	verb_only := rbac.reviewed_bindings with input as bindings([role_binding("b", "r", [rule([], [], ["*"])])])
	{i | some i, _ in verb_only} == {0}
	plain := rbac.reviewed_bindings with input as bindings([role_binding("b", "r", [rule([""], ["configmaps"], ["get", "list"])])])
	plain == {}
}

# Each grant is reported for its resource, verb and group, and through the wildcards `*` (a rule
# on `*` resources is RBAC-002's unless forbidWildcards is false).
test_rbac006_every_grant if {
	every res, gs in object.remove(rbac.escalation_grants, ["*"]) {
		every g in gs {
			one("RBAC-006", bindings([role_binding("b", "r", [rule([g.group], [res], [g.verb])])]), [g.what])
		}
	}
	inp := params(bindings([role_binding("b", "r", [rule(["*"], ["*"], ["*"])])]), {"forbidWildcards": false})
	every g in rbac.escalation_grants["*"] {
		one("RBAC-006", inp, [g.what])
	}
}

test_rbac006_other_group_or_verb if {
	silent("RBAC-006", bindings([role_binding("b", "r", [rule(["apps"], ["pods/exec"], ["create"])])]))
	silent("RBAC-006", bindings([role_binding("b", "r", [rule([""], ["pods/exec"], ["get"])])]))
	silent("RBAC-006", bindings([role_binding("b", "r", [rule(["rbac.authorization.k8s.io"], ["users"], ["impersonate"])])]))
}

# ---------------------------------------------------------------------------------------------
# RBAC-007 missing role
# ---------------------------------------------------------------------------------------------

test_rbac007_role_not_found if {
	inp := bindings([object.union(role_binding("crm-db-old", "gone", []), {"roleFound": false})])
	one("RBAC-007", inp, ["RoleBinding crm/crm-db-old", "Role gone", "does not exist"])
	{"kind": "Role", "namespace": "crm", "name": "gone"} in fired("RBAC-007", inp)[0].evidence
}

test_rbac007_role_found if {
	silent("RBAC-007", fx.hardened)
}

# ---------------------------------------------------------------------------------------------
# RBAC-008 ServiceAccount missing
# ---------------------------------------------------------------------------------------------

test_rbac008_service_account_not_found if {
	inp := fx.db({"serviceAccount": {"name": "crm-db-sa", "found": false, "automountToken": true}, "rbac": {"bindings": []}})
	one("RBAC-008", inp, ["ServiceAccount crm/crm-db-sa", "does not exist"])
	silent("RBAC-005", inp)
}

test_rbac008_default_service_account_is_assumed_to_exist if {
	inp := fx.db({"serviceAccount": {"name": "default", "found": false, "isDefault": true, "automountToken": false}, "rbac": {"bindings": []}})
	silent("RBAC-008", inp)
}

test_rbac008_service_account_found if {
	silent("RBAC-008", fx.hardened)
}

# ---------------------------------------------------------------------------------------------
# RBAC-009 database network exposure
# ---------------------------------------------------------------------------------------------

test_rbac009_database_without_network_policy if {
	one("RBAC-009", fx.db({"networkPolicies": []}), ["StatefulSet crm/crm-db", "any pod in the cluster"])
}

test_rbac009_egress_only_policy if {
	one("RBAC-009", fx.db({"networkPolicies": [{"name": "egress", "policyTypes": ["Egress"]}]}), ["no NetworkPolicy"])
}

test_rbac009_policy_types_default_to_ingress if {
	silent("RBAC-009", fx.db({"networkPolicies": [{"name": "np", "policyTypes": []}]}))
	silent("RBAC-009", fx.db({"networkPolicies": [{"name": "np", "policyTypes": null}]}))
}

test_rbac009_ingress_policy_types if {
	silent("RBAC-009", fx.db({"networkPolicies": [{"name": "np", "policyTypes": ["Egress", "Ingress"]}]}))
	silent("RBAC-009", fx.db({"networkPolicies": [{"name": "np"}]}))
	silent("RBAC-009", fx.db({"networkPolicies": [{"name": "e", "policyTypes": ["Egress"]}, {"name": "i", "policyTypes": ["Ingress"]}]}))
	one("RBAC-009", fx.db({"networkPolicies": [{"name": "e", "policyTypes": ["Egress"]}, {"name": "f", "policyTypes": ["Egress"]}]}), ["no NetworkPolicy"])
}

test_rbac009_not_for_other_workloads if {
	silent("RBAC-009", fx.hardened_web)
}

# ---------------------------------------------------------------------------------------------
# Switches: only an explicit false turns a check off
# ---------------------------------------------------------------------------------------------

without_params(inp) := json.remove(inp, ["params/rbac"])

test_switches_default_on_when_params_are_missing if {
	not without_params(admin).params.rbac
	ids(without_params(admin)) == {"RBAC-001"}
	one("RBAC-002", without_params(bindings([role_binding("crm-db-config", "config-editor", [rule([""], ["configmaps"], ["*"])])])), ["* on configmaps"])
	one("RBAC-003", without_params(bindings([role_binding("crm-secrets", "secret-reader", secret_rules)])), ["every Secret"])
	one("RBAC-004", without_params(default_sa), ["token mounted"])
	one("RBAC-005", without_params(idle_token), ["automountServiceAccountToken: false"])
}
