# Test fixtures shared by the area tests: a hardened input on which no rule fires, and helpers
# to derive inputs from it. Only loaded by `crmrisk test` (not embedded: a *_test.rego file).
package crmrisk.fixtures_test

import rego.v1

default_params := {
	"encryption": {"requireEncryptedStorage": true, "requireIngressTLS": true, "requireDatabaseTLS": true},
	"backups": {"maxIntervalHours": 24, "minRetentionDays": 7, "requireOffsite": true},
	"rbac": {"forbidClusterAdmin": true, "forbidWildcards": true, "forbidSecretReadAll": true, "forbidTokenAutomount": true},
	"disasterRecovery": {"minReplicas": 2, "requirePodDisruptionBudget": true, "requireZoneSpread": true},
}

encrypted_ebs := {
	"name": "gp3-encrypted", "found": true, "isDefault": true, "provisioner": "ebs.csi.aws.com",
	"parameters": {"type": "gp3", "encrypted": "true", "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd"},
}

# A volumeClaimTemplate claim on the given StorageClass object.
template_claim(name, sc) := {
	"name": name, "source": "volumeClaimTemplate", "found": true,
	"storageClassName": sc.name, "storageClass": sc,
}

# A claim from a pod volume on the given StorageClass object.
volume_claim(name, sc) := {
	"name": name, "source": "volume", "found": true,
	"storageClassName": sc.name, "storageClass": sc,
}

# A StorageClass object for a provisioner and its parameters.
storage_class(name, provisioner, parameters) := {
	"name": name, "found": true, "isDefault": false,
	"provisioner": provisioner, "parameters": parameters,
}

# What the context builder derives from a container's env and args (operator/src/context/strings.rs,
# where that derivation is tested) when none of them is a connection or a literal credential.
no_string_facts := {"pgsslmode": {"set": false, "values": []}, "connections": [], "literalCredentials": []}

# A fact of `containers[].connections`: a PostgreSQL connection string in env `env` (null: on the
# command line) naming no sslmode, with `p` merged in.
connection(env, p) := object.union({"env": env, "postgres": true, "sslmodes": [], "jdbcSslTrue": false, "urlPassword": false}, p)

postgres_container := object.union(no_string_facts, {
	"name": "postgres", "image": "postgres:16", "init": false,
	"readinessProbe": true, "livenessProbe": true,
	"env": [
		{"name": "POSTGRES_PASSWORD", "value": null, "fromSecret": {"name": "crm-db-credentials", "key": "password"}, "fromConfigMap": null},
		{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata", "fromSecret": null, "fromConfigMap": null},
	],
	"args": ["postgres", "-c", "ssl=on"],
})

# A plain env var with a literal value.
env(name, value) := {"name": name, "value": value, "fromSecret": null, "fromConfigMap": null}

daily_schedule := {
	"name": "daily", "namespace": "velero", "schedule": "0 2 * * *", "paused": false,
	"intervalHours": 24, "ttl": "720h0m0s", "ttlHours": 720,
	"snapshotVolumes": true, "includedNamespaces": ["crm"], "excludedNamespaces": [],
	"storageLocation": {
		"name": "offsite", "found": true, "provider": "aws", "bucket": "crm-backups",
		"region": "eu-central-1", "accessMode": "ReadWrite",
	},
}

healthy_cnpg := {
	"name": "crm-pg", "backupConfigured": true, "method": "barmanObjectStore",
	"destinationPath": "s3://crm-backups/pg", "retentionPolicy": "30d", "retentionDays": 30,
	"scheduledBackups": [{
		"name": "nightly", "schedule": "0 0 2 * * *", "suspend": false,
		"intervalHours": 24, "method": "barmanObjectStore",
	}],
}

# A replicated, encrypted, backed-up, least-privilege PostgreSQL StatefulSet: no rule fires.
hardened := {
	"workload": {
		"apiVersion": "apps/v1", "kind": "StatefulSet", "namespace": "crm", "name": "crm-db",
		"labels": {"app": "crm-db"}, "annotations": {}, "replicas": 3,
		"podLabels": {"app": "crm-db"}, "podAnnotations": {},
		"podSpec": {
			"serviceAccountName": "crm-db",
			"automountServiceAccountToken": false,
			"topologySpreadConstraints": [{
				"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
				"whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "crm-db"}},
			}],
			"containers": [{"name": "postgres", "image": "postgres:16"}],
		},
		"isDatabase": true,
	},
	"namespace": {"name": "crm", "found": true, "labels": {}, "annotations": {}},
	"classification": {"dataClassification": "confidential", "businessImpact": "high", "source": "workload"},
	"containers": [postgres_container],
	"serviceAccount": {"name": "crm-db", "found": true, "isDefault": false, "automountToken": false},
	"rbac": {"bindings": [{
		"kind": "RoleBinding", "name": "crm-db-config", "namespace": "crm",
		"roleRef": {"kind": "Role", "name": "config-reader"}, "roleFound": true, "clusterWide": false,
		"rules": [{
			"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
			"resourceNames": [], "nonResourceURLs": [],
		}],
	}]},
	"storage": {"claims": [template_claim("data", encrypted_ebs)]},
	"secrets": ["crm-db-credentials"],
	"services": [{"name": "crm-db", "type": "ClusterIP", "ports": [{"name": "pg", "port": 5432, "appProtocol": null}]}],
	"ingresses": [],
	"networkPolicies": [{"name": "crm-db-ingress", "policyTypes": ["Ingress"]}],
	"podDisruptionBudgets": [{"name": "crm-db", "minAvailable": 2, "maxUnavailable": null}],
	"mesh": {
		"istio": {"injected": true, "peerAuthenticationMode": "STRICT"},
		"linkerd": {"injected": false},
	},
	"backup": {
		"tools": {"velero": true, "cnpg": true},
		"velero": {"schedules": [daily_schedule]},
		"cnpg": {"clusters": [healthy_cnpg]},
	},
	"params": default_params,
}

# A stateless web Deployment behind a TLS Ingress: no rule fires either.
hardened_web := object.union(hardened, {
	"workload": {
		"apiVersion": "apps/v1", "kind": "Deployment", "name": "crm-web", "isDatabase": false,
		"podLabels": {"app": "crm-web"}, "labels": {"app": "crm-web"},
	},
	"containers": [{
		"name": "web", "image": "ghcr.io/example/crm-web:1.4.2", "init": false,
		"readinessProbe": true, "livenessProbe": true,
		"env": [
			env("DATABASE_URL", "postgres://crm@crm-db:5432/crm?sslmode=verify-full"),
			{"name": "DATABASE_PASSWORD", "value": null, "fromSecret": {"name": "crm-db-credentials", "key": "password"}, "fromConfigMap": null},
		],
		"args": ["/crm-web", "--listen=:8080"],
		"pgsslmode": {"set": false, "values": []},
		"connections": [connection("DATABASE_URL", {"sslmodes": ["verify-full"]})],
		"literalCredentials": [],
	}],
	"serviceAccount": {"name": "crm-web", "found": true, "isDefault": false, "automountToken": false},
	"rbac": {"bindings": []},
	"storage": {"claims": []},
	"services": [{"name": "crm-web", "type": "ClusterIP", "ports": [{"name": "http", "port": 8080, "appProtocol": null}]}],
	"ingresses": [{
		"name": "crm", "className": "nginx", "hosts": ["crm.example.com"],
		"tlsHosts": ["crm.example.com"], "annotations": {},
	}],
	"networkPolicies": [],
	"podDisruptionBudgets": [{"name": "crm-web", "minAvailable": null, "maxUnavailable": 1}],
	"backup": {"velero": {"schedules": []}, "cnpg": {"clusters": [healthy_cnpg]}},
})

# The hardened database with `p` merged in (objects merged recursively, arrays replaced).
db(p) := object.union(hardened, p)

# The hardened web Deployment with `p` merged in.
web(p) := object.union(hardened_web, p)

# The hardened database with one area parameter changed.
db_param(area, name, value) := db({"params": {area: {name: value}}})

web_param(area, name, value) := web({"params": {area: {name: value}}})
