package crmrisk.disaster_recovery_test

import rego.v1

import data.crmrisk.disaster_recovery as dr
import data.crmrisk.fixtures_test as fx

run(inp) := fs if {
	fs := dr.findings with input as inp
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

replicas(n) := fx.db({"workload": {"replicas": n}})

params(inp, p) := object.union(inp, {"params": {"disasterRecovery": p}})

pdb(min_available, max_unavailable) := {"name": "crm-db", "minAvailable": min_available, "maxUnavailable": max_unavailable}

with_pdbs(inp, list) := object.union(inp, {"podDisruptionBudgets": list})

daemonset := fx.db({"workload": {"kind": "DaemonSet", "replicas": null}, "podDisruptionBudgets": []})

cronjob(p) := object.union(fx.web({"workload": {"kind": "CronJob", "apiVersion": "batch/v1", "replicas": null}, "podDisruptionBudgets": []}), p)

# The pod spec without any spread, then with `p` merged in.
spread(p) := object.union(
	fx.db({"workload": {"podSpec": {"topologySpreadConstraints": []}}}),
	{"workload": {"podSpec": p}},
)

container(name, image, readiness, liveness) := {
	"name": name, "image": image, "init": false,
	"readinessProbe": readiness, "livenessProbe": liveness, "env": [], "args": [],
}

containers(inp, list) := object.union(inp, {"containers": list})

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
# DR-001 replicas
# ---------------------------------------------------------------------------------------------

test_dr001_single_replica if {
	inp := with_pdbs(replicas(1), [])
	one("DR-001", inp, ["StatefulSet crm/crm-db runs 1 replica(s)", "2 required"])
}

test_dr001_enough_replicas if {
	silent("DR-001", with_pdbs(replicas(2), [pdb(1, null)]))
}

test_dr001_follows_min_replicas_param if {
	silent("DR-001", params(with_pdbs(replicas(1), []), {"minReplicas": 1}))
	one("DR-001", params(replicas(3), {"minReplicas": 5}), ["3 replica(s)", "5 required"])
}

test_dr001_not_for_daemonsets_and_cronjobs if {
	silent("DR-001", daemonset)
	silent("DR-001", cronjob({}))
}

# ---------------------------------------------------------------------------------------------
# DR-002 no PodDisruptionBudget
# ---------------------------------------------------------------------------------------------

test_dr002_replicated_without_pdb if {
	one("DR-002", with_pdbs(fx.hardened_web, []), ["Deployment crm/crm-web has 3 replicas but no PodDisruptionBudget"])
}

test_dr002_not_for_a_single_replica if {
	silent("DR-002", with_pdbs(replicas(1), []))
}

test_dr002_not_for_daemonsets if {
	silent("DR-002", daemonset)
}

test_dr002_off if {
	silent("DR-002", params(with_pdbs(fx.hardened, []), {"requirePodDisruptionBudget": false}))
}

# ---------------------------------------------------------------------------------------------
# DR-003 PodDisruptionBudget that blocks evictions
# ---------------------------------------------------------------------------------------------

test_dr003_max_unavailable_zero if {
	inp := with_pdbs(fx.hardened, [pdb(null, 0)])
	one("DR-003", inp, ["PodDisruptionBudget crm/crm-db", "maxUnavailable is 0", "node drains"])
	{"kind": "PodDisruptionBudget", "namespace": "crm", "name": "crm-db"} in fired("DR-003", inp)[0].evidence
}

test_dr003_min_available_all_replicas if {
	one("DR-003", with_pdbs(fx.hardened, [pdb(3, null)]), ["minAvailable 3 is not lower than the 3 replicas"])
	one("DR-003", with_pdbs(fx.hardened, [pdb("100%", null)]), ["minAvailable is 100%"])
}

test_dr003_single_replica_min_available_one if {
	one("DR-003", with_pdbs(replicas(1), [pdb(1, null)]), ["minAvailable 1"])
}

test_dr003_allows_one_disruption if {
	silent("DR-003", with_pdbs(fx.hardened, [pdb(2, null)]))
	silent("DR-003", with_pdbs(fx.hardened, [pdb(null, 1)]))
	silent("DR-003", with_pdbs(fx.hardened, [pdb("50%", null)]))
}

# ---------------------------------------------------------------------------------------------
# DR-004 zone spread
# ---------------------------------------------------------------------------------------------

test_dr004_no_spread if {
	one("DR-004", spread({}), ["StatefulSet crm/crm-db has 3 replicas", "topology.kubernetes.io/zone"])
}

test_dr004_hostname_spread_is_not_zone_spread if {
	inp := spread({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]})
	one("DR-004", inp, ["zone"])
}

test_dr004_required_anti_affinity if {
	inp := spread({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "topology.kubernetes.io/zone"}]}}})
	silent("DR-004", inp)
}

test_dr004_preferred_anti_affinity if {
	inp := spread({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
		"weight": 100,
		"podAffinityTerm": {"topologyKey": "failure-domain.beta.kubernetes.io/zone"},
	}]}}})
	silent("DR-004", inp)
}

# zone_spread writes lib.zone_keys out: each key, in each form, spreads the replicas.
test_dr004_zone_keys_are_libs if {
	every key in data.crmrisk.lib.zone_keys {
		silent("DR-004", spread({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule"}]}))
		silent("DR-004", spread({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": key}]}}}))
		silent("DR-004", spread({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "podAffinityTerm": {"topologyKey": key}}]}}}))
	}
}

test_dr004_not_for_a_single_replica if {
	silent("DR-004", object.union(spread({}), {"workload": {"replicas": 1}}))
}

test_dr004_off if {
	silent("DR-004", params(spread({}), {"requireZoneSpread": false}))
}

# ---------------------------------------------------------------------------------------------
# DR-005 readiness probe
# ---------------------------------------------------------------------------------------------

test_dr005_database_container_without_readiness if {
	inp := containers(fx.hardened, [
		container("postgres", "postgres:16", false, true),
		container("metrics", "quay.io/prometheuscommunity/postgres-exporter:v0.15.0", false, true),
	])
	one("DR-005", inp, ["container postgres of StatefulSet crm/crm-db", "no readiness probe"])
}

test_dr005_database_image_unknown_checks_every_container if {
	inp := containers(fx.hardened, [container("db", "registry.example.com/crm/store:3", false, true)])
	one("DR-005", inp, ["container db"])
}

# A database's only container is its database container, whatever its image.
test_dr005_single_container_of_a_database if {
	one("DR-005", containers(fx.hardened, [container("postgres", "postgres:16", false, true)]), ["container postgres"])
	exporter := container("metrics", "quay.io/prometheuscommunity/postgres-exporter:v0.15.0", false, true)
	one("DR-005", containers(fx.hardened, [exporter]), ["container metrics"])
}

test_dr005_web_container_behind_a_service if {
	inp := containers(fx.hardened_web, [container("web", "ghcr.io/example/crm-web:1.4.2", false, true)])
	one("DR-005", inp, ["container web of Deployment crm/crm-web"])
}

test_dr005_not_without_traffic if {
	inp := containers(object.union(fx.hardened_web, {"services": []}), [container("worker", "ghcr.io/example/worker:1", false, true)])
	silent("DR-005", inp)
}

test_dr005_not_for_cronjobs if {
	silent("DR-005", cronjob({"containers": [container("job", "ghcr.io/example/job:1", false, false)]}))
}

test_dr005_init_containers_are_ignored if {
	init := object.union(container("migrate", "postgres:16", false, false), {"init": true})
	silent("DR-005", containers(fx.hardened, [fx.postgres_container, init]))
}

# ---------------------------------------------------------------------------------------------
# DR-006 liveness probe
# ---------------------------------------------------------------------------------------------

test_dr006_container_without_liveness if {
	inp := containers(fx.hardened_web, [container("web", "ghcr.io/example/crm-web:1.4.2", true, false)])
	one("DR-006", inp, ["container web of Deployment crm/crm-web", "no liveness probe"])
}

test_dr006_every_container_counts if {
	inp := containers(fx.hardened, [
		container("postgres", "postgres:16", true, false),
		container("metrics", "quay.io/prometheuscommunity/postgres-exporter:v0.15.0", true, false),
	])
	count(fired("DR-006", inp)) == 2
}

test_dr006_not_for_init_containers_or_cronjobs if {
	init := object.union(container("migrate", "postgres:16", false, false), {"init": true})
	silent("DR-006", containers(fx.hardened, [fx.postgres_container, init]))
	silent("DR-006", cronjob({"containers": [container("job", "ghcr.io/example/job:1", false, false)]}))
}

# ---------------------------------------------------------------------------------------------
# DR-007 database on ephemeral storage
# ---------------------------------------------------------------------------------------------

test_dr007_database_without_volume if {
	one("DR-007", fx.db({"storage": {"claims": []}}), ["StatefulSet crm/crm-db looks like a database", "no PersistentVolumeClaim"])
}

redis(args) := fx.db({
	"storage": {"claims": []},
	"containers": [object.union(container("redis", "redis:7.4", true, true), {"args": args})],
})

test_dr007_cache_without_volume if {
	silent("DR-007", redis(["--tls-port", "6380", "--port", "0"]))
	silent("DR-007", fx.db({"storage": {"claims": []}, "containers": [container("memcached", "memcached:1.6", true, true)]}))
}

test_dr007_durable_cache_without_volume if {
	one("DR-007", redis(["--appendonly", "yes"]), ["no PersistentVolumeClaim"])
	one("DR-007", redis(["--appendonly=yes"]), ["no PersistentVolumeClaim"])
}

test_dr007_cache_next_to_a_database_is_not_a_cache if {
	inp := object.union(redis([]), {"containers": [container("postgres", "postgres:16", true, true), container("redis", "redis:7", true, true)]})
	one("DR-007", inp, ["looks like a database"])
}

test_dr007_database_with_volume if {
	silent("DR-007", fx.hardened)
}

test_dr007_not_for_other_workloads if {
	silent("DR-007", fx.hardened_web)
}

# ---------------------------------------------------------------------------------------------
# DR-008 PodDisruptionBudget that protects nothing
# ---------------------------------------------------------------------------------------------

test_dr008_min_available_zero if {
	inp := with_pdbs(fx.hardened, [pdb(0, null)])
	one("DR-008", inp, ["PodDisruptionBudget crm/crm-db", "minAvailable is 0"])
	silent("DR-002", inp)
}

test_dr008_max_unavailable_all if {
	one("DR-008", with_pdbs(fx.hardened, [pdb(null, "100%")]), ["maxUnavailable is 100%"])
	one("DR-008", with_pdbs(fx.hardened, [pdb(null, 3)]), ["maxUnavailable 3 is not lower than the 3 replicas"])
}

test_dr008_protective_budget if {
	silent("DR-008", with_pdbs(fx.hardened, [pdb(null, 1)]))
}

test_dr008_not_for_a_single_replica if {
	silent("DR-008", with_pdbs(replicas(1), [pdb(0, null)]))
}

test_dr008_off if {
	silent("DR-008", params(with_pdbs(fx.hardened, [pdb(0, null)]), {"requirePodDisruptionBudget": false}))
}

# The in-place gates before blocks_evictions and protects_nothing must let every reason through,
# whatever the replica count (null, or fewer than a number) and the form ("0%", "100%").
test_pdb_gates_let_every_reason_through if {
	one("DR-003", with_pdbs(replicas(null), [pdb("100%", null)]), ["minAvailable is 100%"])
	one("DR-003", with_pdbs(replicas(null), [pdb(null, "0%")]), ["maxUnavailable is 0"])
	one("DR-003", with_pdbs(fx.hardened, [pdb(5, 1)]), ["minAvailable 5 is not lower than the 3 replicas"])
	silent("DR-003", with_pdbs(replicas(null), [pdb(5, null)]))
	one("DR-008", with_pdbs(fx.hardened, [pdb("0%", null)]), ["minAvailable is 0"])
	one("DR-008", with_pdbs(fx.hardened, [pdb(1, 5)]), ["maxUnavailable 5 is not lower than the 3 replicas"])
	silent("DR-008", with_pdbs(fx.hardened, [pdb("50%", "50%")]))
}
