# The finding contract (policies/README.md) across every area: on a handful of badly configured
# workloads, every finding is well formed, every id it carries has metadata in metadata.json,
# and together they exercise every rule of metadata.json.
package crmrisk.contract_test

import rego.v1

import data.crmrisk.fixtures_test as fx

all_findings(inp) := fs if {
	enc := data.crmrisk.encryption.findings with input as inp
	bkp := data.crmrisk.backups.findings with input as inp
	rbac := data.crmrisk.rbac.findings with input as inp
	dr := data.crmrisk.disaster_recovery.findings with input as inp
	fs := ((enc | bkp) | rbac) | dr
}

rule(resources, verbs) := {"apiGroups": ["", "rbac.authorization.k8s.io"], "resources": resources, "verbs": verbs, "resourceNames": [], "nonResourceURLs": []}

binding(kind, name, role, found, rules) := {
	"kind": kind, "name": name, "namespace": "crm",
	"roleRef": {"kind": "ClusterRole", "name": role}, "roleFound": found,
	"clusterWide": kind == "ClusterRoleBinding", "rules": rules,
}

# Everything about this database is wrong.
neglected_database := fx.db({
	"workload": {"replicas": 1, "podSpec": {"topologySpreadConstraints": []}},
	"containers": [{
		"name": "postgres", "image": "postgres:16", "init": false,
		"readinessProbe": false, "livenessProbe": false,
		"env": [fx.env("POSTGRES_PASSWORD", "postgres"), fx.env("PGSSLMODE", "disable")],
		"args": ["--primary=postgres://replicator:pw@crm-db-0/crm"],
		"pgsslmode": {"set": true, "values": ["disable"]},
		"connections": [fx.connection(null, {"urlPassword": true})],
		"literalCredentials": ["POSTGRES_PASSWORD"],
	}],
	"serviceAccount": {"name": "default", "isDefault": true, "automountToken": true},
	"rbac": {"bindings": [
		binding("ClusterRoleBinding", "crm-admin", "cluster-admin", true, [rule(["*"], ["*"])]),
		binding("RoleBinding", "crm-ops", "ops", true, [rule(["*"], ["get"]), rule(["secrets"], ["list"]), rule(["pods/exec"], ["create"])]),
		binding("RoleBinding", "crm-old", "removed", false, []),
	]},
	"storage": {"claims": [
		fx.template_claim("data", fx.storage_class("gp2", "kubernetes.io/aws-ebs", {})),
		fx.volume_claim("wal", fx.storage_class("standard", "pd.csi.storage.gke.io", {})),
		fx.volume_claim("scratch", fx.storage_class("nfs", "nfs.csi.k8s.io", {})),
		{"name": "lost", "source": "volume", "found": false, "storageClassName": null, "storageClass": null},
	]},
	"ingresses": [{"name": "crm-db-admin", "className": "nginx", "hosts": ["db.example.com"], "tlsHosts": [], "annotations": {}}],
	"networkPolicies": [],
	"podDisruptionBudgets": [{"name": "crm-db", "minAvailable": 1, "maxUnavailable": null}],
	"mesh": {"istio": {"injected": false, "peerAuthenticationMode": null}, "linkerd": {"injected": false}},
	"backup": {
		"velero": {"schedules": [
			object.union(fx.daily_schedule, {"name": "paused", "paused": true}),
			object.union(fx.daily_schedule, {
				"name": "weekly", "intervalHours": 168, "ttl": "72h0m0s", "ttlHours": 72, "snapshotVolumes": false,
				"storageLocation": {"name": "local", "found": true, "provider": "aws", "bucket": "b", "s3Url": "http://minio.velero.svc:9000", "accessMode": "ReadWrite"},
			}),
		]},
		"cnpg": {"clusters": [
			object.union(fx.healthy_cnpg, {"name": "pg-a", "backupConfigured": false}),
			object.union(fx.healthy_cnpg, {"name": "pg-b", "retentionDays": 1, "retentionPolicy": "1d", "scheduledBackups": []}),
		]},
	},
})

# Replicated, but with a budget that protects nothing and no spread.
unprotected_web := fx.web({
	"workload": {"podSpec": {"topologySpreadConstraints": []}},
	"serviceAccount": {"automountToken": true},
	"podDisruptionBudgets": [{"name": "crm-web", "minAvailable": 0, "maxUnavailable": null}],
})

no_budget_web := fx.web({"podDisruptionBudgets": []})

orphan_database := fx.db({
	"storage": {"claims": []},
	"serviceAccount": {"name": "crm-db-sa", "found": false},
	"backup": {"tools": {"velero": false, "cnpg": false}, "velero": {"schedules": []}, "cnpg": {"clusters": []}},
})

uncovered_database := fx.db({"backup": {"velero": {"schedules": []}}})

contract_inputs := [
	fx.hardened, fx.hardened_web, neglected_database, unprotected_web,
	no_budget_web, orphan_database, uncovered_database,
]

findings_of_all := {f |
	some inp in contract_inputs
	some f in all_findings(inp)
}

rule_ids := {id | some id, _ in data.crmrisk.rules}

emitted_ids := {f.id | some f in findings_of_all}

valid_score(f, field) if not field in object.keys(f)

valid_score(f, field) if {
	is_number(f[field])
	f[field] >= 1
	f[field] <= 5
	f[field] == round(f[field])
}

valid_evidence(e) if {
	is_string(e.kind)
	e.kind != ""
	is_string(e.name)
	e.name != ""
	object.get(e, "namespace", null) == null
}

valid_evidence(e) if {
	is_string(e.kind)
	e.kind != ""
	is_string(e.name)
	e.name != ""
	is_string(e.namespace)
	e.namespace != ""
}

well_formed(f) if {
	is_string(f.id)
	is_string(f.message)
	f.message != ""
	is_array(f.evidence)
	count(f.evidence) > 0
	every e in f.evidence {
		valid_evidence(e)
	}
	valid_score(f, "likelihood")
	valid_score(f, "impact")
	every k in object.keys(f) {
		k in {"id", "message", "evidence", "likelihood", "impact"}
	}
}

test_every_finding_is_well_formed if {
	bad := [f |
		some f in findings_of_all
		not well_formed(f)
	]
	print("malformed:", bad)
	count(bad) == 0
}

test_every_emitted_id_has_metadata if {
	unknown := emitted_ids - rule_ids
	print("ids without metadata:", unknown)
	count(unknown) == 0
}

test_every_rule_fires_on_the_contract_inputs if {
	silent := rule_ids - emitted_ids
	print("rules that never fired:", silent)
	count(silent) == 0
}

test_hardened_inputs_are_clean if {
	print(all_findings(fx.hardened), all_findings(fx.hardened_web))
	count(all_findings(fx.hardened)) == 0
	count(all_findings(fx.hardened_web)) == 0
}

test_metadata_is_complete if {
	bad := {id |
		some id, meta in data.crmrisk.rules
		not complete(meta)
	}
	print("incomplete metadata:", bad)
	count(bad) == 0
}

complete(meta) if {
	meta.category in {"encryption", "backups", "rbac", "disasterRecovery"}
	meta.control in {"prevention", "detection", "response", "recovery"}
	meta.objective in {"confidentiality", "integrity", "availability"}
	meta.likelihood in numbers.range(1, 5)
	meta.impact in numbers.range(1, 5)
	every field in ["title", "remediation", "description"] {
		is_string(meta[field])
		meta[field] != ""
	}
}

# Messages name the workload or the object at fault, never an empty placeholder.
test_messages_have_no_unfilled_placeholders if {
	bad := [f.message |
		some f in findings_of_all
		regex.match(`%[a-z!]|<nil>|\(MISSING\)|EXTRA`, f.message)
	]
	print(bad)
	count(bad) == 0
}

# lib.enabled is no longer called by the built-in areas (they read their parameters inline) but
# stays a helper for custom policies: on unless explicitly false, also when params are missing.
test_enabled_is_on_unless_explicitly_false if {
	data.crmrisk.lib.enabled("rbac", "forbidWildcards") with input as {}
	data.crmrisk.lib.enabled("rbac", "forbidWildcards") with input as {"params": {"rbac": {}}}
	data.crmrisk.lib.enabled("rbac", "forbidWildcards") with input as {"params": {"rbac": {"forbidWildcards": true}}}
	not data.crmrisk.lib.enabled("rbac", "forbidWildcards") with input as {"params": {"rbac": {"forbidWildcards": false}}}
}

# lib.params, likewise kept for custom policies since the areas read input.params inline: one
# area's parameters, an empty object when the area has none.
test_params_reads_one_area if {
	data.crmrisk.lib.params("backups") == {"minRetentionDays": 7} with input as {"params": {"backups": {"minRetentionDays": 7}}}
	data.crmrisk.lib.params("backups") == {} with input as {}
}
