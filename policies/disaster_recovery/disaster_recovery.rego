# Disaster recovery and availability: enough replicas, disruption budgets that protect without
# blocking maintenance, replicas spread over zones, probes, and database data on real volumes.
package crmrisk.disaster_recovery

import rego.v1

import data.crmrisk.lib

# lib's rules are read as data.crmrisk.lib.<rule>, its functions through the `lib` alias: regorus
# evaluates the whole crmrisk.lib document when a rule is read through the alias (~0.2 ms).

# The rules read the replica count and minReplicas as input paths (input.workload.replicas,
# input.params.disasterRecovery.minReplicas), not through alias rules, and test that the workload
# has a replica count in place rather than reading lib.has_replicas: on regorus' VM each rule read
# is a call (BENCHMARKS.md, "Instructions"). The input schema makes replicas an integer or null
# and minReplicas an integer, so `replicas != null` is that test, and minReplicas needs none: the
# is_number calls were builtin calls, which cost regorus' VM about as much as a rule call.

# The switches (requirePodDisruptionBudget, requireZoneSpread) are read in place as
# `not input.params.disasterRecovery.<name> == false` (on unless explicitly false, like
# lib.enabled), not through a rule, and tested after the conditions that pick a finding: they are
# nearly always on, and on regorus' VM the first read of a rule is a call that costs more than
# most tests, as does a builtin call such as object.get or count (BENCHMARKS.md, "Instructions").
# For the same reason the PodDisruptionBudgets and claims are tested empty as `not arr[0]` (their
# items are objects, never false). DR-002 and DR-008, which both test requirePodDisruptionBudget,
# never fire in the same evaluation (no PodDisruptionBudget, or some).

# DR-003 and DR-008 call blocks_evictions and protects_nothing (a function call and three bodies
# on regorus' VM) only for a PodDisruptionBudget that passes an in-place test every reason needs:
# the first body's set, or the field compared with the replica count, which holds for a number
# not lower than it and for any string such as "100%" (strings sort after numbers and null in
# Rego's ordering; null does not). The schema makes minAvailable and maxUnavailable required
# (integer, string or null) and replicas an integer or null, so the test is always defined, and
# most budgets (minAvailable 1, maxUnavailable null) fail it (BENCHMARKS.md, "Instructions").
#
# DR-003 and DR-008 test the reason they get (`reason` alone on a line) before building the
# finding: regorus' VM goes on with a body after `reason := f(pdb)` leaves reason undefined, and
# would build the finding (a function call, thousands of machine instructions) for every
# PodDisruptionBudget, most of which have no reason (BENCHMARKS.md, "Instructions"). Findings are
# the same either way.
#
# Their finding is built by pdb_finding, with the budget named ("PodDisruptionBudget ns/name")
# and referred to in place, rather than in the body: regorus' VM sets up as many registers as the
# largest body of findings needs for each of its eight bodies, and few workloads get these
# findings (BENCHMARKS.md, "Instructions").
pdb_finding(id, format, pdb, reason) := {
	"id": id,
	"message": sprintf(format, [input.workload.namespace, pdb.name, data.crmrisk.lib.workload_desc, reason]),
	"evidence": [
		{"kind": "PodDisruptionBudget", "namespace": input.workload.namespace, "name": pdb.name},
		data.crmrisk.lib.workload_ref,
	],
}

# ---------------------------------------------------------------------------------------------
# DR-001: fewer replicas than required
# ---------------------------------------------------------------------------------------------

# The comparison comes before the null test (null < minReplicas holds in Rego's ordering, so the
# test is still needed): most workloads have enough replicas, and the comparison alone ends the
# body for them in fewer VM instructions (BENCHMARKS.md, "Instructions").
findings contains f if {
	input.workload.replicas < input.params.disasterRecovery.minReplicas
	input.workload.replicas != null
	f := {
		"id": "DR-001",
		"message": sprintf(
			"%s runs %v replica(s), fewer than the %v required: the loss of one pod or node makes it unavailable",
			[data.crmrisk.lib.workload_desc, input.workload.replicas, input.params.disasterRecovery.minReplicas],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# DR-002: replicated workload without a PodDisruptionBudget
# ---------------------------------------------------------------------------------------------

findings contains f if {
	not input.podDisruptionBudgets[0]
	data.crmrisk.lib.replicated
	not input.params.disasterRecovery.requirePodDisruptionBudget == false
	f := {
		"id": "DR-002",
		"message": sprintf(
			"%s has %v replicas but no PodDisruptionBudget: a node drain or cluster upgrade may evict all of them at once",
			[data.crmrisk.lib.workload_desc, input.workload.replicas],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# DR-003: PodDisruptionBudget that blocks every voluntary eviction
# ---------------------------------------------------------------------------------------------

blocks_evictions(pdb) := "maxUnavailable is 0" if {
	pdb.maxUnavailable in {0, "0%"}
} else := "minAvailable is 100%" if {
	pdb.minAvailable == "100%"
} else := sprintf("minAvailable %v is not lower than the %v replicas", [pdb.minAvailable, input.workload.replicas]) if {
	is_number(pdb.minAvailable)
	input.workload.replicas != null
	pdb.minAvailable >= input.workload.replicas
}

findings contains f if {
	some pdb in input.podDisruptionBudgets
	[pdb.maxUnavailable in {0, "0%"}, pdb.minAvailable >= input.workload.replicas] != [false, false] # see pdb_finding
	reason := blocks_evictions(pdb)
	reason # see pdb_finding
	f := pdb_finding(
		"DR-003",
		"PodDisruptionBudget %s/%s of %s allows no voluntary disruption (%s): node drains and cluster upgrades hang until someone deletes it",
		pdb, reason,
	)
}

# ---------------------------------------------------------------------------------------------
# DR-004: replicas not spread over zones
# ---------------------------------------------------------------------------------------------

findings contains f if {
	data.crmrisk.lib.replicated
	not data.crmrisk.lib.zone_spread
	not input.params.disasterRecovery.requireZoneSpread == false
	f := {
		"id": "DR-004",
		"message": sprintf(
			"%s has %v replicas but no topologySpreadConstraint or pod anti-affinity on topology.kubernetes.io/zone: they may all run in one zone and fail with it",
			[data.crmrisk.lib.workload_desc, input.workload.replicas],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# DR-005: no readiness probe where traffic is routed
# ---------------------------------------------------------------------------------------------

# Containers that receive traffic, among the main containers DR-005 tests (`not c.init`): the
# database containers of a database, or every container of a workload behind a Service. For the
# latter it is input.containers, not lib.main_containers: a main container is in both, and
# main_containers is a rule call and a comprehension on regorus' VM (BENCHMARKS.md,
# "Instructions"). A database with a single container (the commonest) has it as its database
# container whatever its image (lib.database_containers falls back to the main containers when
# no image looks like a database), so the first form gives input.containers without matching the
# image against the database words: a few builtin calls, each costing regorus' VM thousands of
# machine instructions. A lone init container is not a database container, but DR-005 never asks
# about one.
traffic_containers := input.containers if {
	data.crmrisk.lib.is_database
	not input.containers[1]
} else := data.crmrisk.lib.database_containers if data.crmrisk.lib.is_database
else := input.containers if input.services[0]
else := []

# The containers without a readiness probe come first and traffic_containers is read only for
# them: for a database it is worked out by matching each image against the database words
# (lib.database_containers), and most workloads have their probes (BENCHMARKS.md, "Instructions").
# For the same reason DR-005 and DR-006 iterate input.containers, not lib.main_containers (a
# comprehension worked out in every evaluation otherwise), test `not c.init` themselves (init
# containers have no readiness probe, so DR-005 tests it before reading traffic_containers), and
# test the kind after the probe.
findings contains f if {
	some c in input.containers
	not c.readinessProbe
	not c.init
	input.workload.kind != "CronJob"
	c in traffic_containers
	f := {
		"id": "DR-005",
		"message": sprintf(
			"container %s of %s has no readiness probe: it receives connections before it is ready and while it is failing",
			[c.name, data.crmrisk.lib.workload_desc],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# DR-006: no liveness probe
# ---------------------------------------------------------------------------------------------

findings contains f if {
	some c in input.containers
	not c.livenessProbe
	not c.init
	input.workload.kind != "CronJob"
	f := {
		"id": "DR-006",
		"message": sprintf(
			"container %s of %s has no liveness probe: a hung process is never restarted",
			[c.name, data.crmrisk.lib.workload_desc],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# DR-007: database data on ephemeral storage
# ---------------------------------------------------------------------------------------------

# In-memory caches (Redis, Memcached, ... without --appendonly yes) are expected to lose their
# content; everything else that looks like a database is not.
findings contains f if {
	data.crmrisk.lib.is_database
	not input.storage.claims[0]
	not data.crmrisk.lib.in_memory_cache
	f := {
		"id": "DR-007",
		"message": sprintf(
			"%s looks like a database but has no PersistentVolumeClaim: its data lives in an emptyDir, a hostPath or the container and is lost when the pod moves",
			[data.crmrisk.lib.workload_desc],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# DR-008: PodDisruptionBudget that protects nothing
# ---------------------------------------------------------------------------------------------

protects_nothing(pdb) := "minAvailable is 0" if {
	pdb.minAvailable in {0, "0%"}
} else := "maxUnavailable is 100%" if {
	pdb.maxUnavailable == "100%"
} else := sprintf("maxUnavailable %v is not lower than the %v replicas", [pdb.maxUnavailable, input.workload.replicas]) if {
	is_number(pdb.maxUnavailable)
	input.workload.replicas != null
	pdb.maxUnavailable >= input.workload.replicas
}

findings contains f if {
	data.crmrisk.lib.replicated
	some pdb in input.podDisruptionBudgets
	[pdb.minAvailable in {0, "0%"}, pdb.maxUnavailable >= input.workload.replicas] != [false, false] # see pdb_finding
	reason := protects_nothing(pdb)
	reason # see pdb_finding
	not input.params.disasterRecovery.requirePodDisruptionBudget == false
	f := pdb_finding(
		"DR-008",
		"PodDisruptionBudget %s/%s of %s lets every replica be evicted at once (%s): it gives no protection during drains and upgrades",
		pdb, reason,
	)
}
