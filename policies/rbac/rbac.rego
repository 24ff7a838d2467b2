# RBAC and access: what the workload's ServiceAccount can do through its bindings, whether its
# token is mounted at all, and whether a database is open to every pod on the network.
package crmrisk.rbac

import rego.v1

import data.crmrisk.lib

# lib's rules are read as data.crmrisk.lib.<rule>, its functions through the `lib` alias: regorus
# evaluates the whole crmrisk.lib document when a rule is read through the alias (~0.2 ms).

# The rules read the ServiceAccount as input.serviceAccount, not through an alias rule: on
# regorus' VM each rule read is a call, and the RBAC rules read it about six times per evaluation.
sa_desc := sprintf("ServiceAccount %s/%s", [input.workload.namespace, input.serviceAccount.name])

sa_ref := {"kind": "ServiceAccount", "namespace": input.workload.namespace, "name": input.serviceAccount.name}

# The binding rules write the role ("ClusterRole view") and a policy rule ("get,list on secrets")
# out in place, and RBAC-002 and RBAC-003 build their finding in one binding_finding call, rather
# than through helper functions: a function call costs thousands of machine instructions on
# regorus' VM, and RBAC-002 fires for many workloads (BENCHMARKS.md, "Instructions").

# Bindings RBAC-001 reports; the narrower RBAC rules skip them. The set holds the bindings
# themselves, not their indexes: nothing needs the index, and on regorus' VM each loop variable
# costs two instructions per binding. The roleRef test is written out, not a function call: it
# runs for every binding, and on regorus' VM a call costs thousands of machine instructions
# (BENCHMARKS.md, "Instructions"). The name comes first: few roles are called cluster-admin,
# while many are ClusterRoles.
admin_bindings contains b if {
	some b in input.rbac.bindings
	b.roleRef.name == "cluster-admin"
	b.roleRef.kind == "ClusterRole"
	not input.params.rbac.forbidClusterAdmin == false
}

# Bindings RBAC-002, RBAC-003 and RBAC-006 look into: not reported by RBAC-001, with a rule that
# names a resource one of them reports (or `*`), or has the verb `*`. Most bindings only read
# ordinary resources (configmaps); they are passed over here once rather than in each of the
# three rules, which then read only these bindings. The rule test comes before the RBAC-001
# test, as most bindings fail it. The object maps a binding's index to the binding, so the rules
# that read it (and narrow_bindings) get the binding without looking it up in the input again:
# on regorus' VM input.rbac.bindings[i] is three object lookups.
#
# The rule test is `true in [A, B]`, one expression for `A or B`: A is a strings.any_prefix_match
# over the rule's resources (one that starts with one of the names below), B the verb `*`. The
# names are the resources escalation_grants lists (`pods` also covers pods/exec and pods/attach,
# `serviceaccounts` serviceaccounts/token), Secrets and `*`. It also lets through a few resources
# the three rules do not report (pods/log, ...), which only costs them a look: they test each
# rule exactly. On regorus' VM a loop over the resources and a second body for the verb `*` cost
# far more machine instructions than the builtin call, and matching the verbs as well (one
# any_prefix_match over array.concat(r.resources, r.verbs)) cost more than the `in` test: the
# concatenation is a builtin call of its own, and every name is tried against every verb
# (BENCHMARKS.md, "Instructions"). rbac_test checks that every resource the three rules report,
# and the verb `*`, make a binding reviewed.
reviewed_bindings[i] := b if {
	some i, b in input.rbac.bindings
	some r in b.rules
	true in [
		strings.any_prefix_match(r.resources, [
			"secrets", "pods", "serviceaccounts", "nodes/proxy",
			"users", "groups", "roles", "clusterroles", "*",
		]),
		"*" in r.verbs,
	]
	not admin_bindings[b]
}


# RBAC-002, RBAC-003 and RBAC-006 form one group, tried only when some binding is reviewed: on
# regorus' VM, trying a rule body costs thousands of machine instructions even when it finds
# nothing to loop over (BENCHMARKS.md, "Instructions").
# Here and in the three rules, a collection is tested non-empty by comparing it with the empty
# one: on regorus' VM the count builtin costs more than the comparison.
findings contains f if {
	reviewed_bindings != {}
	some f in binding_findings
}

# The switches are read in place as `not input.params.rbac.<name> == false` (turned off only by
# an explicit false): the engine always fills them in, but an input without them (a hand-written
# one, say) must still be checked, not let through. On regorus' VM the path costs less than
# object.get with a default, or than a rule, whose first read is a call (BENCHMARKS.md,
# "Instructions"). RBAC-001, RBAC-003, RBAC-004 and RBAC-005 test theirs after the conditions that
# pick a finding, as it is nearly always on.

# Rules RBAC-002 reports; RBAC-003 and RBAC-006 skip them. lib.wildcard_rule's test is written
# out, as in RBAC-002: a call of its two definitions costs more on regorus' VM than the builtin.
wildcard_reported(r) if {
	"*" in array.concat(r.verbs, r.resources)
	not input.params.rbac.forbidWildcards == false
}

# Reviewed bindings (index to binding, as reviewed_bindings) with a rule RBAC-002 does not
# report: RBAC-003 and RBAC-006 look only into these. Most reviewed bindings grant `*` and nothing else, and are passed over here once. The
# wildcard test is written out (with a second body for forbidWildcards: false, when RBAC-002
# reports nothing) rather than a wildcard_reported call per rule: on regorus' VM a function call
# costs thousands of machine instructions (BENCHMARKS.md, "Instructions").
narrow_bindings[i] := b if {
	not input.params.rbac.forbidWildcards == false
	some i, b in reviewed_bindings
	some r in b.rules
	not "*" in r.verbs
	not "*" in r.resources
}

narrow_bindings[i] := b if {
	input.params.rbac.forbidWildcards == false
	some i, b in reviewed_bindings
	some _ in b.rules
}


# Impact raised to the maximum for grants that apply in every namespace.
cluster_wide_extra(b) := {"impact": 5} if b.clusterWide
else := {}

# The finding of RBAC-002 or RBAC-003 (id) for binding b, whose message fmt takes the
# ServiceAccount, the workload, the binding's scope, the binding, the role's kind and name, then
# detail. One call builds it, with the forms of lib.binding_scope, lib.binding_desc,
# lib.binding_ref, lib.role_ref and cluster_wide_extra written out for the bindings Kubernetes
# accepts (a RoleBinding to a Role or a ClusterRole, a ClusterRoleBinding to a ClusterRole):
# on regorus' VM those five calls cost more than the rest of the finding (BENCHMARKS.md,
# "Instructions"). Any other binding gets the helpers' answers from any_binding_finding (a
# separate function keeps them out of this one's register window); rbac_test holds the forms
# equal to the helpers'. The binding's fields read more than once are read once into a local:
# on regorus' VM each read is an object lookup.
binding_finding(id, fmt, b, detail) := {
	"id": id,
	"message": sprintf(fmt, [
		sa_desc, data.crmrisk.lib.workload_desc, sprintf("in namespace %s", [ns]),
		sprintf("RoleBinding %s/%s", [ns, name]), "Role", role, detail,
	]),
	"evidence": [
		sa_ref,
		{"kind": "RoleBinding", "namespace": ns, "name": name},
		{"kind": "Role", "namespace": ns, "name": role},
	],
} if {
	b.kind == "RoleBinding"
	b.roleRef.kind == "Role"
	b.clusterWide == false
	ns := b.namespace
	name := b.name
	role := b.roleRef.name
} else := {
	"id": id,
	"message": sprintf(fmt, [
		sa_desc, data.crmrisk.lib.workload_desc, "cluster-wide",
		sprintf("ClusterRoleBinding %s", [name]), "ClusterRole", role, detail,
	]),
	"evidence": [sa_ref, {"kind": "ClusterRoleBinding", "name": name}, {"kind": "ClusterRole", "name": role}],
	"impact": 5,
} if {
	b.kind == "ClusterRoleBinding"
	b.roleRef.kind == "ClusterRole"
	b.clusterWide == true
	name := b.name
	role := b.roleRef.name
} else := {
	"id": id,
	"message": sprintf(fmt, [
		sa_desc, data.crmrisk.lib.workload_desc, sprintf("in namespace %s", [ns]),
		sprintf("RoleBinding %s/%s", [ns, name]), "ClusterRole", role, detail,
	]),
	"evidence": [
		sa_ref,
		{"kind": "RoleBinding", "namespace": ns, "name": name},
		{"kind": "ClusterRole", "name": role},
	],
} if {
	b.kind == "RoleBinding"
	b.roleRef.kind == "ClusterRole"
	b.clusterWide == false
	ns := b.namespace
	name := b.name
	role := b.roleRef.name
} else := any_binding_finding(id, fmt, b, detail)

any_binding_finding(id, fmt, b, detail) := object.union(
	{
		"id": id,
		"message": sprintf(fmt, [
			sa_desc, data.crmrisk.lib.workload_desc, lib.binding_scope(b), lib.binding_desc(b),
			b.roleRef.kind, b.roleRef.name, detail,
		]),
		"evidence": [sa_ref, lib.binding_ref(b), lib.role_ref(b)],
	},
	cluster_wide_extra(b),
)

# ---------------------------------------------------------------------------------------------
# RBAC-001: bound to cluster-admin
# ---------------------------------------------------------------------------------------------

# A RoleBinding to cluster-admin is "only" admin of one namespace.
admin_extra(b) := {} if b.clusterWide
else := {"impact": 4}

findings contains f if {
	some b in admin_bindings
	f := object.union(
		{
			"id": "RBAC-001",
			"message": sprintf(
				"%s used by %s is bound to ClusterRole cluster-admin by %s: it can do anything %s",
				[sa_desc, data.crmrisk.lib.workload_desc, lib.binding_desc(b), lib.binding_scope(b)],
			),
			"evidence": [sa_ref, lib.binding_ref(b), lib.role_ref(b)],
		},
		admin_extra(b),
	)
}

# ---------------------------------------------------------------------------------------------
# RBAC-002: wildcard verbs or resources
# ---------------------------------------------------------------------------------------------

# lib.wildcard_rule's test is written out: on regorus' VM a call of its two definitions costs
# more than the builtin. A rule's verbs and resources are read once, into locals: each read is an
# object lookup.
binding_findings contains f if {
	not input.params.rbac.forbidWildcards == false
	some b in reviewed_bindings
	rules := sort([sprintf("%s on %s", [concat(",", verbs), concat(",", resources)]) |
		some r in b.rules
		verbs := r.verbs
		resources := r.resources
		"*" in array.concat(verbs, resources)
	])
	rules != []
	f := binding_finding("RBAC-002", "%s used by %s gets wildcard permissions %s through %s (%s %s): %s", b, concat("; ", rules))
}

# ---------------------------------------------------------------------------------------------
# RBAC-003: can read every Secret
# ---------------------------------------------------------------------------------------------

# get, list or watch (or *) on secrets (or *) in the core API group (or *), for every name (no
# resourceNames: none listed, or the field absent). Written out rather than as lib.grants(r, "", "secrets", verb) for each of the
# three verbs: this runs for every rule of the reviewed bindings, and on regorus' VM those
# function calls cost more than the whole test.
secret_read_rule(r) if {
	some res in r.resources
	res in {"secrets", "*"}
	some verb in r.verbs
	verb in {"get", "list", "watch", "*"}
	some group in r.apiGroups
	group in {"", "*"}
	not r.resourceNames[0]
}

# The switch is tested last: it is nearly always on, and most narrow bindings do not read Secrets.
binding_findings contains f if {
	some b in narrow_bindings
	rules := sort([sprintf("%s on %s", [concat(",", r.verbs), concat(",", r.resources)]) |
		some r in b.rules
		secret_read_rule(r)
		not wildcard_reported(r)
	])
	rules != []
	not input.params.rbac.forbidSecretReadAll == false
	f := binding_finding("RBAC-003", "%s used by %s can read every Secret %s through %s (%s %s: %s)", b, concat("; ", rules))
}

# ---------------------------------------------------------------------------------------------
# RBAC-004: default ServiceAccount with its token mounted
# ---------------------------------------------------------------------------------------------

findings contains f if {
	input.serviceAccount.isDefault
	input.serviceAccount.automountToken
	not input.params.rbac.forbidTokenAutomount == false
	f := {
		"id": "RBAC-004",
		"message": sprintf(
			"%s runs as the default ServiceAccount of namespace %s with its API token mounted: every pod of the namespace shares that identity, and a compromised container can use it",
			[data.crmrisk.lib.workload_desc, input.workload.namespace],
		),
		"evidence": [sa_ref, data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# RBAC-005: token mounted though no binding grants it anything
# ---------------------------------------------------------------------------------------------

# `== []` rather than count(...) == 0: bindings is an array (input schema), and on regorus' VM the
# builtin call costs more than the comparison.
findings contains f if {
	input.rbac.bindings == []
	not input.serviceAccount.isDefault
	input.serviceAccount.found
	input.serviceAccount.automountToken
	not input.params.rbac.forbidTokenAutomount == false
	f := {
		"id": "RBAC-005",
		"message": sprintf(
			"%s mounts the API token of %s although no RoleBinding or ClusterRoleBinding grants it anything: set automountServiceAccountToken: false",
			[data.crmrisk.lib.workload_desc, sa_desc],
		),
		"evidence": [sa_ref, data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# RBAC-006: permissions that lead to more permissions
# ---------------------------------------------------------------------------------------------

# What each resource can be used for, by verb and API group: the rules RBAC-006 reports. `*`
# lists every grant, since a rule on every resource has them all. Keyed by resource, so that a
# rule's resources pick their grants by one lookup each instead of a join of every resource with
# every grant: on regorus' VM each loop iteration costs over a thousand machine instructions
# (BENCHMARKS.md, "Instructions"), and most rules the RBAC-006 body reads name no such resource.
# rbac_test checks that `*` holds exactly the other keys' grants.
escalation_grants := {
	"pods/exec": [{"group": "", "verb": "create", "what": "exec into pods"}],
	"pods/attach": [{"group": "", "verb": "create", "what": "attach to pods"}],
	"pods": [{"group": "", "verb": "create", "what": "create pods running as any ServiceAccount of the namespace"}],
	"serviceaccounts/token": [{"group": "", "verb": "create", "what": "mint ServiceAccount tokens"}],
	"nodes/proxy": [{"group": "", "verb": "get", "what": "reach the kubelet API through nodes/proxy"}],
	"serviceaccounts": [{"group": "", "verb": "impersonate", "what": "impersonate ServiceAccounts"}],
	"users": [{"group": "", "verb": "impersonate", "what": "impersonate users"}],
	"groups": [{"group": "", "verb": "impersonate", "what": "impersonate groups"}],
	"roles": [
		{"group": "rbac.authorization.k8s.io", "verb": "escalate", "what": "escalate Roles"},
		{"group": "rbac.authorization.k8s.io", "verb": "bind", "what": "bind any Role"},
	],
	"clusterroles": [
		{"group": "rbac.authorization.k8s.io", "verb": "escalate", "what": "escalate ClusterRoles"},
		{"group": "rbac.authorization.k8s.io", "verb": "bind", "what": "bind any ClusterRole"},
	],
	"*": [
		{"group": "", "verb": "create", "what": "exec into pods"},
		{"group": "", "verb": "create", "what": "attach to pods"},
		{"group": "", "verb": "create", "what": "create pods running as any ServiceAccount of the namespace"},
		{"group": "", "verb": "create", "what": "mint ServiceAccount tokens"},
		{"group": "", "verb": "get", "what": "reach the kubelet API through nodes/proxy"},
		{"group": "", "verb": "impersonate", "what": "impersonate ServiceAccounts"},
		{"group": "", "verb": "impersonate", "what": "impersonate users"},
		{"group": "", "verb": "impersonate", "what": "impersonate groups"},
		{"group": "rbac.authorization.k8s.io", "verb": "escalate", "what": "escalate Roles"},
		{"group": "rbac.authorization.k8s.io", "verb": "bind", "what": "bind any Role"},
		{"group": "rbac.authorization.k8s.io", "verb": "escalate", "what": "escalate ClusterRoles"},
		{"group": "rbac.authorization.k8s.io", "verb": "bind", "what": "bind any ClusterRole"},
	],
}

# A rule's grants are tested with lib.grants' test written out, not by a call for each grant: a
# function call costs thousands of machine instructions on regorus' VM (BENCHMARKS.md,
# "Instructions"). The two accepted values are an array, which the VM builds without ordering
# its members as it would a set's. The rule RBAC-002 reports is skipped last, as few rules get
# that far.
binding_findings contains f if {
	some b in narrow_bindings
	whats := sort({g.what |
		some r in b.rules
		some res in r.resources
		some g in escalation_grants[res]
		some v in r.verbs
		v in [g.verb, "*"]
		some group in r.apiGroups
		group in [g.group, "*"]
		not wildcard_reported(r)
	})
	whats != []
	f := object.union(
		{
			"id": "RBAC-006",
			"message": sprintf(
				"%s used by %s can %s %s through %s (%s %s): each is a path to more privileges than the role grants",
				[sa_desc, data.crmrisk.lib.workload_desc, concat(", ", whats), lib.binding_scope(b), lib.binding_desc(b), b.roleRef.kind, b.roleRef.name],
			),
			"evidence": [sa_ref, lib.binding_ref(b), lib.role_ref(b)],
		},
		cluster_wide_extra(b),
	)
}

# ---------------------------------------------------------------------------------------------
# RBAC-007: binding to a role that does not exist
# ---------------------------------------------------------------------------------------------

findings contains f if {
	some b in input.rbac.bindings
	not b.roleFound
	f := {
		"id": "RBAC-007",
		"message": sprintf(
			"%s binds %s to %s %s, which does not exist: whoever creates a role of that name later grants it to %s",
			[lib.binding_desc(b), sa_desc, b.roleRef.kind, b.roleRef.name, data.crmrisk.lib.workload_desc],
		),
		"evidence": [sa_ref, lib.binding_ref(b), lib.role_ref(b)],
	}
}

# ---------------------------------------------------------------------------------------------
# RBAC-008: ServiceAccount missing
# ---------------------------------------------------------------------------------------------

# The controller-manager creates `default` in every namespace, so a missing `default` only means
# the manifests being scanned do not list it (crmrisk scan), not that it is missing.
findings contains f if {
	not input.serviceAccount.found
	input.serviceAccount.name != "default"
	f := {
		"id": "RBAC-008",
		"message": sprintf(
			"%s runs as %s, which does not exist: new pods are rejected until it is created, and whoever creates it decides what they may do",
			[data.crmrisk.lib.workload_desc, sa_desc],
		),
		"evidence": [sa_ref, data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# RBAC-009: database open to every pod
# ---------------------------------------------------------------------------------------------

# policyTypes defaults to ["Ingress"] (plus Egress when egress rules exist) when unset, so a
# policy restricts ingress when its policyTypes names Ingress, or has no first member (empty,
# null or missing). Two bodies rather than a helper that works out the effective list: on
# regorus' VM that is a function call per NetworkPolicy (BENCHMARKS.md, "Instructions"). The
# schema makes policyTypes a list of strings, so a first member is never false.
ingress_restricted if {
	some np in input.networkPolicies
	"Ingress" in np.policyTypes
}

ingress_restricted if {
	some np in input.networkPolicies
	not np.policyTypes[0]
}

findings contains f if {
	data.crmrisk.lib.is_database
	not ingress_restricted
	f := {
		"id": "RBAC-009",
		"message": sprintf(
			"%s is a database but no NetworkPolicy restricts ingress to its pods: any pod in the cluster can connect to it",
			[data.crmrisk.lib.workload_desc],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}
