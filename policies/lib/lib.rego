# Helpers shared by the area packages (crmrisk.encryption, crmrisk.backups, crmrisk.rbac,
# crmrisk.disaster_recovery). Everything here reads the input document described in
# policies/README.md; nothing here emits findings.
package crmrisk.lib

import rego.v1

# ---------------------------------------------------------------------------------------------
# The workload and evidence references
# ---------------------------------------------------------------------------------------------

# Helpers that build evidence and message parts write their objects and strings out rather
# than calling ref or qualified, and a helper that picks one of two forms is one
# definition with `else`, not two definitions with opposite conditions: on regorus' VM every
# function call, and every definition tried, costs thousands of machine instructions, and these
# helpers run for every finding (BENCHMARKS.md, "Instructions"). Findings are the same either way.

# Evidence pointing at the workload itself.
workload_ref := {
	"kind": input.workload.kind,
	"namespace": input.workload.namespace,
	"name": input.workload.name,
}

# "StatefulSet crm/crm-db", for messages.
workload_desc := sprintf("%s %s/%s", [input.workload.kind, input.workload.namespace, input.workload.name])

# Evidence for a namespaced object in the workload's namespace.
ref(kind, name) := {"kind": kind, "namespace": input.workload.namespace, "name": name}

# "crm/data", for messages about objects in the workload's namespace.
qualified(name) := sprintf("%s/%s", [input.workload.namespace, name])

is_database if input.workload.isDatabase == true

# is_stateful and the area rules test count(input.storage.claims) in place rather than reading
# has_claims: on regorus' VM the first read of a rule is a call (BENCHMARKS.md, "Instructions").
has_claims if count(input.storage.claims) > 0

# An array is tested non-empty as `arr[0]` (here and in the helpers below) rather than with
# count: its items are objects or strings, never false, and on regorus' VM a builtin call such as
# count costs about as much as a rule call, a few VM instructions more than the index
# (BENCHMARKS.md, "Instructions").

# Keeps state worth backing up: persistent volumes, or a database that is not a mere cache.
is_stateful if input.storage.claims[0]
else := true if {
	is_database
	not in_memory_cache
}

# `replicas` is null for DaemonSet and CronJob, which have no replica count. replicated and the
# DR rules test the replica count in place rather than reading has_replicas: on regorus' VM the
# first read of a rule is a call (BENCHMARKS.md, "Instructions").
has_replicas if is_number(input.workload.replicas)

# The input schema makes replicas an integer or null, and null > 1 is false in Rego's ordering,
# so no is_number call (a builtin call costs regorus' VM about as much as a rule call).
replicated if input.workload.replicas > 1

# The workload holds confidential or restricted data.
sensitive_data if input.classification.dataClassification in {"confidential", "restricted"}

# Containers that run for the pod's whole life (init containers excluded). Collections of
# containers are arrays, not sets: a set orders its members by comparing whole objects.
main_containers := [c |
	some c in input.containers
	not c.init
]

# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------

# All parameters, read once per evaluation (a rule's value is cached; a function's is not).
all_params := object.get(input, "params", {})

# The parameters of one area (`encryption`, `backups`, `rbac`, `disasterRecovery`). The area
# packages read a numeric parameter as an input path (`input.params.backups.minRetentionDays`,
# undefined when missing, like `params(area).name`): a function call costs thousands of
# instructions on regorus' VM, and these are read in every evaluation (BENCHMARKS.md). Custom
# policies can use either.
params(area) := object.get(data.crmrisk.lib.all_params, area, {})

# A boolean check is on unless its parameter is explicitly false. The area packages spell this
# out as `object.get(input, ["params", area, name], true) != false`, one builtin call: the
# whole library ran 2.5 % faster on regorus' VM than with calls of this function (BENCHMARKS.md).
# Custom policies can use either.
enabled(area, name) if object.get(object.get(data.crmrisk.lib.all_params, area, {}), name, true) != false

# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

# "PersistentVolumeClaim crm/data" or "volumeClaimTemplate data of StatefulSet crm/crm-db".
claim_desc(c) := sprintf("PersistentVolumeClaim %s/%s", [input.workload.namespace, c.name]) if c.source == "volume"
else := sprintf("volumeClaimTemplate %s of %s", [c.name, workload_desc])

# PVCs created from a volumeClaimTemplate are named per replica: point at the workload instead.
claim_ref(c) := {"kind": "PersistentVolumeClaim", "namespace": input.workload.namespace, "name": c.name} if c.source == "volume"
else := workload_ref

# StorageClass parameter as a lower-case string, keys matched case-insensitively (the Azure
# driver accepts both diskEncryptionSetID and DiskEncryptionSetID); "" when unset.
sc_param(sc, key) := value if {
	values := sort([sprintf("%v", [v]) |
		some k, v in object.get(sc, "parameters", {})
		lower(k) == lower(key)
	])
	values[0]
	value := trim_space(lower(values[0]))
} else := ""


aws_ebs_provisioners := {"ebs.csi.aws.com", "kubernetes.io/aws-ebs"}

gce_pd_provisioners := {"pd.csi.storage.gke.io", "kubernetes.io/gce-pd"}

azure_disk_provisioners := {"disk.csi.azure.com", "kubernetes.io/azure-disk"}

ceph_rbd_provisioners := {"rbd.csi.ceph.com", "kubernetes.io/rbd"}

# Provisioners whose encryption parameters the encryption rules understand: the four sets above,
# written out rather than their union, which regorus' VM would build again in every evaluation
# (BENCHMARKS.md, "Instructions"). encryption_test checks that they match.
#
# These sets (and tls_sslmodes and zone_keys below) are for custom policies: the library writes
# them out where it tests them, as on regorus' VM the first read of a rule, even a constant one,
# is a call, and a literal set is loaded by one instruction. encryption_test checks that the
# encryption rules pick a finding by the provisioners of these sets, disaster_recovery_test that
# zone_spread reads both zone keys.
known_provisioners := {
	"ebs.csi.aws.com", "kubernetes.io/aws-ebs", "pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
	"disk.csi.azure.com", "kubernetes.io/azure-disk", "rbd.csi.ceph.com", "kubernetes.io/rbd",
}

# ---------------------------------------------------------------------------------------------
# Database connections
# ---------------------------------------------------------------------------------------------

# sslmode values that make libpq encrypt for sure; `prefer` (the default) and `allow` fall back
# to plaintext, `disable` never encrypts.
tls_sslmodes := {"require", "verify-ca", "verify-full"}

# ---------------------------------------------------------------------------------------------
# RBAC
# ---------------------------------------------------------------------------------------------

# Evidence for a binding (RoleBinding namespaced, ClusterRoleBinding cluster-scoped).
binding_ref(b) := {"kind": b.kind, "namespace": b.namespace, "name": b.name} if b.kind != "ClusterRoleBinding"
else := {"kind": b.kind, "name": b.name}

# Evidence for the role a binding grants.
role_ref(b) := {"kind": "Role", "namespace": b.namespace, "name": b.roleRef.name} if b.roleRef.kind != "ClusterRole"
else := {"kind": "ClusterRole", "name": b.roleRef.name}

# "ClusterRoleBinding crm-admin" / "RoleBinding crm/crm-reader".
binding_desc(b) := sprintf("RoleBinding %s/%s", [b.namespace, b.name]) if b.kind != "ClusterRoleBinding"
else := sprintf("ClusterRoleBinding %s", [b.name])

# Where a binding's rules apply: "cluster-wide" or "in namespace crm".
binding_scope(b) := "cluster-wide" if b.clusterWide
else := sprintf("in namespace %s", [b.namespace])

# A policy rule with a wildcard in its verbs or resources.
wildcard_rule(r) if "*" in r.verbs

wildcard_rule(r) if "*" in r.resources

# Does the rule grant `verb` on `resource` (in `group`), with wildcards honoured?
grants(r, group, resource, verb) if {
	some g in r.apiGroups
	g in {group, "*"}
	some res in r.resources
	res in {resource, "*"}
	some v in r.verbs
	v in {verb, "*"}
}

# ---------------------------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------------------------

zone_keys := {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"}

# The workload's pod spec, {} when missing (for custom policies; the library reads input paths).
pod_spec := object.get(input, ["workload", "podSpec"], {})

# Replicas are spread over zones by a topology spread constraint or a pod anti-affinity term
# (required or preferred) on the zone key. Three definitions, not an `else` chain: each form
# iterates, and regorus 0.14.1's VM never takes an `else` after a body that iterates
# (operator/tests/engine.rs, the_vm_skips_an_else_after_an_iterating_body). Each form iterates
# an input path, not object.get(pod_spec, path, []): a missing path iterates nothing either way,
# and the path costs regorus' VM less than a rule read and a builtin call per form. The zone keys
# are zone_keys written out (see known_provisioners).
zone_spread if {
	some tsc in input.workload.podSpec.topologySpreadConstraints
	tsc.topologyKey in {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"}
}

zone_spread if {
	some term in input.workload.podSpec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution
	term.topologyKey in {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"}
}

zone_spread if {
	some w in input.workload.podSpec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution
	w.podAffinityTerm.topologyKey in {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"}
}


# ---------------------------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------------------------

# Words in the image of a database, each mapped to "" (see database_image).
database_image_erasers := {
	"postgres": "", "postgis": "", "timescale": "", "mysql": "", "mariadb": "", "percona": "",
	"mongo": "", "redis": "", "valkey": "", "keydb": "", "cassandra": "", "scylla": "",
	"elasticsearch": "", "opensearch": "", "cockroach": "", "clickhouse": "", "couchdb": "",
	"neo4j": "", "etcd": "", "zookeeper": "", "memcached": "", "influxdb": "", "questdb": "",
	"yugabyte": "", "mssql": "", "oracle": "", "db2": "", "supabase": "", "patroni": "", "spilo": "",
	"dragonfly": "",
}

# Sidecars named after the database they watch (postgres-exporter) are not the database.
# An image names one of the words when erasing them all (strings.replace_n with "" for each)
# changes it: one builtin call per image. A regex alternation of the words costs far more on
# regorus' VM, which hands each regex.match a clone of the cached regex whose automaton starts
# empty (about 50,000 instructions per call; BENCHMARKS.md, "Instructions").
database_image(image) if {
	img := lower(image)
	not contains(img, "exporter")
	strings.replace_n(database_image_erasers, img) != img
}

# Main containers whose image looks like a database, computed once. It iterates input.containers
# and tests `not c.init` itself (the same containers in the same order as main_containers): on
# regorus' VM reading main_containers would be a rule call and a comprehension of its own, which
# database_containers needs only when no image matches (BENCHMARKS.md, "Instructions").
database_image_containers := [c |
	some c in input.containers
	not c.init
	database_image(c.image)
]

# The containers of a database workload that run the database: those whose image looks like one,
# or every main container when none does; none for other workloads.
database_containers := database_image_containers if {
	is_database
	database_image_containers[0]
} else := main_containers if is_database
else := []

# In-memory stores, usually run as caches whose content can be rebuilt.
cache_image_erasers := {"memcached": "", "redis": "", "valkey": "", "keydb": "", "dragonfly": ""}

cache_image(image) if {
	img := lower(image)
	strings.replace_n(cache_image_erasers, img) != img
}

# Append-only persistence asked for on the command line: the data is meant to survive.
durable_cache(c) if regex.match(`--appendonly[ =]+yes`, lower(concat(" ", object.get(c, "args", []))))

# A database workload whose database containers are all in-memory caches without append-only
# persistence: losing its data costs a warm-up, not a restore.
in_memory_cache if {
	is_database
	database_containers[0]
	every c in database_containers {
		cache_image(c.image)
		not durable_cache(c)
	}
}
