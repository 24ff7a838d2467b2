# Backups: is the workload's state backed up (Velero Schedules for volumes, CloudNativePG for
# the PostgreSQL clusters it uses), often enough, kept long enough, and somewhere else.
package crmrisk.backups

import rego.v1

import data.crmrisk.lib

# lib's rules are read as data.crmrisk.lib.<rule>, its functions through the `lib` alias: regorus
# evaluates the whole crmrisk.lib document when a rule is read through the alias (~0.2 ms).

# Arrays are tested non-empty as `arr[0]` and empty as `not arr[0]` (their items are objects,
# never false) rather than with count: on regorus' VM a builtin call costs about as much as a
# rule call, thousands of machine instructions (BENCHMARKS.md, "Instructions").

# Read by BKP-002 after its schedule test; BKP-001 tests the two tools in place, as on regorus'
# VM the first read of a rule is a call (BENCHMARKS.md, "Instructions").
any_backup_tool if input.backup.tools.velero
else := true if input.backup.tools.cnpg

# The Velero rules write a Schedule's name ("velero/daily") and evidence (the Schedule, its
# BackupStorageLocation) out in each finding rather than through helper functions: they fire for
# a good share of the workloads, often once per schedule, and a function call costs thousands of
# machine instructions on regorus' VM (BENCHMARKS.md, "Instructions").

cluster_ref(cl) := {"kind": "Cluster", "namespace": input.workload.namespace, "name": cl.name}

scheduled_backup_ref(sb) := {"kind": "ScheduledBackup", "namespace": input.workload.namespace, "name": sb.name}

claim_names := concat(", ", sort([c.name | some c in input.storage.claims]))

# What would be lost: "volumes data, logs" or "its database files".
state_desc := sprintf("volumes %s", [claim_names]) if input.storage.claims[0]
else := "a database" if data.crmrisk.lib.is_database

claim_refs := [lib.claim_ref(c) | some c in input.storage.claims]

# Velero Schedules that select the workload and are not paused. The schedule collections are
# arrays in the builder's order: a set would order its members by comparing whole objects.
active_schedules := [s |
	some s in input.backup.velero.schedules
	not s.paused
]

# Schedules actually producing backups: running, with a location they can write to (found and
# not ReadOnly; tested in place rather than by a function call per schedule).
effective_schedules := [s |
	some s in active_schedules
	s.storageLocation.found
	s.storageLocation.accessMode != "ReadOnly"
]

# Raised likelihood for a finding whose schedule was the only thing producing backups.
sole_coverage_extra := {"likelihood": 5} if not effective_schedules[0]
else := {}

# The rules come in two groups, each behind one test: `stateful_findings` (Velero coverage, for
# workloads with state worth backing up) and `cnpg_findings` (for workloads that use a
# CloudNativePG Cluster). On regorus' VM, trying a rule body costs thousands of machine
# instructions even when its first line fails, so a workload without state, or without a
# CloudNativePG Cluster, fails one test here rather than each rule of the group (BENCHMARKS.md,
# "Instructions").
#
# `findings` is a set like every area's, but written as a complete rule that picks the groups'
# sets (an `else` chain over the four cases, no body iterating) rather than as a partial set
# rule adding their findings one by one: on regorus' VM each finding added again costs a loop
# iteration and a set insertion, thousands of machine instructions.
findings := stateful_findings if {
	data.crmrisk.lib.is_stateful
	not input.backup.cnpg.clusters[0]
} else := set() if {
	not input.backup.cnpg.clusters[0]
} else := stateful_findings | cnpg_findings if {
	data.crmrisk.lib.is_stateful
} else := cnpg_findings

# ---------------------------------------------------------------------------------------------
# BKP-001: no backup tool at all; BKP-002: stateful workload that no backup covers
# ---------------------------------------------------------------------------------------------

# Neither fires while Velero is installed and some Schedule covers the workload: one body tests
# that ([velero, no schedule] is [true, false]) and reads unprotected_finding only otherwise,
# instead of a body per rule, as each body tried costs regorus' VM about a thousand machine
# instructions (BENCHMARKS.md, "Instructions"). The findings exclude each other (BKP-002 needs a
# tool).
stateful_findings contains f if {
	[input.backup.tools.velero, input.backup.velero.schedules == []] != [true, false]
	f := unprotected_finding
	f # regorus' VM would go on with an undefined finding
}

velero_note := "no Velero Schedule selects its namespace or labels" if input.backup.tools.velero
else := "Velero is not installed (CloudNativePG only backs up its own PostgreSQL clusters)"

unprotected_finding := {
	"id": "BKP-001",
	"message": sprintf(
		"%s keeps state (%s) but no backup tool is installed in the cluster: neither Velero nor CloudNativePG was found",
		[data.crmrisk.lib.workload_desc, state_desc],
	),
	"evidence": array.concat([data.crmrisk.lib.workload_ref], claim_refs),
} if {
	not input.backup.tools.velero
	not input.backup.tools.cnpg
} else := {
	"id": "BKP-002",
	"message": sprintf("%s keeps state (%s) that is not backed up: %s", [data.crmrisk.lib.workload_desc, state_desc, velero_note]),
	"evidence": array.concat([data.crmrisk.lib.workload_ref], claim_refs),
} if {
	not input.backup.velero.schedules[0]
	any_backup_tool
}

# ---------------------------------------------------------------------------------------------
# BKP-003: backups too far apart (RPO)
# ---------------------------------------------------------------------------------------------

# A schedule's intervalHours and ttlHours are a number or null, and the parameters numbers (the
# input schema), so they are tested with comparisons (null sorts before numbers) rather than
# is_number: on regorus' VM a builtin call costs about as much as a rule call (BENCHMARKS.md,
# "Instructions").
#
# BKP-003 fires when every active schedule runs less often than allowed or has no interval, and
# one has an interval. The first is tested with `every`, cheaper than taking the shortest
# interval with a comprehension and min: (interval <= max) == (interval == null) holds for null
# (true == true) and for an interval above the maximum (false == false). interval_finding is
# undefined when no active schedule has an interval; it takes the shortest one only for several
# schedules.
stateful_findings contains f if {
	every s in active_schedules {
		(s.intervalHours <= input.params.backups.maxIntervalHours) == (s.intervalHours == null)
	}
	f := interval_finding
	f # regorus' VM would go on with an undefined finding
}

# The findings of BKP-003, BKP-004, BKP-005 and BKP-007 are built by a function or rule rather
# than in the body: regorus' VM sets up as many registers as the largest body of
# stateful_findings needs for each of its bodies it tries, and building a finding takes most of
# them (BENCHMARKS.md, "Instructions").
#
# With one active schedule, the commonest case, the finding names it without the comprehensions,
# sort and concatenations of the general form (the `else`), its parts written into the message's
# format rather than by a sprintf of their own: on regorus' VM each builtin call costs a few
# thousand machine instructions. Both forms give the same finding.
interval_finding := {
	"id": "BKP-003",
	"message": sprintf(
		"the most frequent Velero Schedule covering %s runs every %v hours (%s/%s every %vh), more than the %v hours allowed: up to %v hours of data can be lost",
		[
			data.crmrisk.lib.workload_desc, s.intervalHours,
			s.namespace, s.name, s.intervalHours,
			input.params.backups.maxIntervalHours, s.intervalHours,
		],
	),
	"evidence": [data.crmrisk.lib.workload_ref, {"kind": "Schedule", "namespace": s.namespace, "name": s.name}],
} if {
	not active_schedules[1]
	s := active_schedules[0]
	s.intervalHours != null
} else := {
	"id": "BKP-003",
	"message": sprintf(
		"the most frequent Velero Schedule covering %s runs every %v hours (%s), more than the %v hours allowed: up to %v hours of data can be lost",
		[
			data.crmrisk.lib.workload_desc, shortest,
			concat(", ", sort([sprintf("%s/%s every %vh", [s.namespace, s.name, s.intervalHours]) |
				some s in active_schedules
				s.intervalHours != null
			])),
			input.params.backups.maxIntervalHours, shortest,
		],
	),
	"evidence": array.concat([data.crmrisk.lib.workload_ref], [{"kind": "Schedule", "namespace": s.namespace, "name": s.name} |
		some s in active_schedules
		s.intervalHours != null
	]),
} if {
	shortest := min([s.intervalHours |
		some s in active_schedules
		s.intervalHours != null
	])
	shortest # regorus' VM would go on with an undefined shortest
}

# ---------------------------------------------------------------------------------------------
# BKP-004: backups not kept long enough
# ---------------------------------------------------------------------------------------------

# The ttl as written, or Velero's default when unset.
ttl_desc(s) := s.ttl if is_string(s.ttl)
else := sprintf("%vh (default)", [s.ttlHours])

# BKP-004 fires when every active schedule keeps its backups fewer hours than the days required
# (24 a day) or has no ttl (null when unparsable, and null sorts before numbers), and one has a
# ttl above 0. The first is tested with `every`, as for BKP-003, rather than by taking the
# longest ttl with a comprehension and max, which cost more VM instructions for every stateful
# workload (BENCHMARKS.md, "Instructions"); the ttl is compared with the days times 24 because a
# null ttl divided by 24 is an error on regorus' VM. retention_finding is undefined when no
# active schedule has a ttl above 0; without active schedules (all paused) `every` holds, and the
# test after it spares the three forms of retention_finding.
stateful_findings contains f if {
	every s in active_schedules {
		s.ttlHours < input.params.backups.minRetentionDays * 24
	}
	active_schedules[0]
	f := retention_finding
	f # regorus' VM would go on with an undefined finding
}

# One active schedule: see interval_finding. Its ttl is written as ttl_desc would (the first two
# forms), without calling it.
retention_finding := {
	"id": "BKP-004",
	"message": sprintf(
		"Velero keeps the backups of %s for at most %v days (%s/%s ttl %s), fewer than the %v days required: corruption noticed later cannot be rolled back",
		[
			data.crmrisk.lib.workload_desc, s.ttlHours / 24,
			s.namespace, s.name, s.ttl,
			input.params.backups.minRetentionDays,
		],
	),
	"evidence": [data.crmrisk.lib.workload_ref, {"kind": "Schedule", "namespace": s.namespace, "name": s.name}],
} if {
	not active_schedules[1]
	s := active_schedules[0]
	s.ttlHours > 0
	s.ttl != null # ttl_desc's first form: the schema makes ttl a string or null
} else := {
	"id": "BKP-004",
	"message": sprintf(
		"Velero keeps the backups of %s for at most %v days (%s/%s ttl %vh (default)), fewer than the %v days required: corruption noticed later cannot be rolled back",
		[
			data.crmrisk.lib.workload_desc, s.ttlHours / 24,
			s.namespace, s.name, s.ttlHours,
			input.params.backups.minRetentionDays,
		],
	),
	"evidence": [data.crmrisk.lib.workload_ref, {"kind": "Schedule", "namespace": s.namespace, "name": s.name}],
} if {
	not active_schedules[1]
	s := active_schedules[0]
	s.ttlHours > 0
} else := {
	"id": "BKP-004",
	"message": sprintf(
		"Velero keeps the backups of %s for at most %v days (%s), fewer than the %v days required: corruption noticed later cannot be rolled back",
		[
			data.crmrisk.lib.workload_desc, longest,
			concat(", ", sort([sprintf("%s/%s ttl %s", [s.namespace, s.name, ttl_desc(s)]) |
				some s in active_schedules
				s.ttlHours > 0
			])),
			input.params.backups.minRetentionDays,
		],
	),
	"evidence": array.concat([data.crmrisk.lib.workload_ref], [{"kind": "Schedule", "namespace": s.namespace, "name": s.name} |
		some s in active_schedules
		s.ttlHours > 0
	]),
} if {
	longest := max([s.ttlHours |
		some s in active_schedules
		s.ttlHours > 0
	]) / 24
	longest # regorus' VM would go on with an undefined longest
}

cnpg_findings contains f if {
	some cl in input.backup.cnpg.clusters
	cl.backupConfigured
	cl.retentionDays != null
	cl.retentionDays < input.params.backups.minRetentionDays
	f := {
		"id": "BKP-004",
		"message": sprintf(
			"CloudNativePG Cluster %s used by %s keeps backups for %v days (retentionPolicy %s), fewer than the %v days required",
			[lib.qualified(cl.name), data.crmrisk.lib.workload_desc, cl.retentionDays, cl.retentionPolicy, input.params.backups.minRetentionDays],
		),
		"evidence": [cluster_ref(cl), data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# BKP-005 and BKP-006 (Velero): one loop over the schedules
# ---------------------------------------------------------------------------------------------

# A Schedule that is not paused and writes to a location that was found, is ReadWrite, has a
# provider and a bucket (`> ""`: a string other than "", as null sorts before strings) and no
# s3Url has neither finding. That is tested here in one pass over the schedules; the rules that
# pick the findings (schedule_findings) run only when some schedule fails the test, instead of
# four bodies each looping over the schedules for every stateful workload: on regorus' VM each
# instruction, loop iteration and body tried costs hundreds of machine instructions
# (BENCHMARKS.md, "Instructions"). The schema requires every field tested here but s3Url.
stateful_findings contains f if {
	some s in input.backup.velero.schedules
	[
		s.paused, s.storageLocation.found, s.storageLocation.accessMode,
		s.storageLocation.provider > "", s.storageLocation.bucket > "",
		object.get(s.storageLocation, "s3Url", ""),
	] != [false, true, "ReadWrite", true, true, ""]
	some f in schedule_findings
}

# ---------------------------------------------------------------------------------------------
# BKP-005: backups not verifiably stored off the cluster
# ---------------------------------------------------------------------------------------------

# The BKP-005 rules test their switch after the conditions that pick a finding: it is nearly
# always on, and on regorus' VM the first read of a rule is a call that costs more than most
# tests (BENCHMARKS.md, "Instructions").
offsite_checked if object.get(input, ["params", "backups", "requireOffsite"], true) != false

# An object store URL that resolves inside the cluster (MinIO next to the workload).
in_cluster_url(u) if regex.match(`(\.svc(\.|:|/|$)|\.cluster\.local|//localhost|//127\.|//\[?::1)`, lower(u))

location_problem(loc) := "has no provider" if {
	object.get(loc, "provider", null) in {null, ""}
} else := "has no bucket" if {
	object.get(loc, "bucket", null) in {null, ""}
} else := sprintf("points at an object store inside the cluster (%s)", [loc.s3Url]) if {
	in_cluster_url(object.get(loc, "s3Url", ""))
}

schedule_findings contains f if {
	some s in active_schedules
	s.storageLocation.found
	# location_problem is called only for a location without a provider or a bucket, or with an
	# s3Url, as a function call costs thousands of machine instructions on regorus' VM.
	[
		s.storageLocation.provider > "", s.storageLocation.bucket > "",
		object.get(s.storageLocation, "s3Url", ""),
	] != [true, true, ""]
	problem := location_problem(s.storageLocation)
	problem # regorus' VM would go on with an undefined problem
	offsite_checked
	f := offsite_finding(s, problem)
}

offsite_finding(s, problem) := {
	"id": "BKP-005",
	"message": sprintf(
		"Velero Schedule %s/%s backs up %s to BackupStorageLocation %s, which %s: the backups may not survive the loss of the cluster",
		[s.namespace, s.name, data.crmrisk.lib.workload_desc, s.storageLocation.name, problem],
	),
	"evidence": [{"kind": "Schedule", "namespace": s.namespace, "name": s.name}, {"kind": "BackupStorageLocation", "namespace": s.namespace, "name": s.storageLocation.name}, data.crmrisk.lib.workload_ref],
}

cnpg_findings contains f if {
	some cl in input.backup.cnpg.clusters
	cl.backupConfigured
	cl.method == "barmanObjectStore"
	object.get(cl, "destinationPath", null) in {null, ""}
	offsite_checked
	f := {
		"id": "BKP-005",
		"message": sprintf(
			"CloudNativePG Cluster %s used by %s has no barmanObjectStore destinationPath: where its backups go cannot be verified",
			[lib.qualified(cl.name), data.crmrisk.lib.workload_desc],
		),
		"evidence": [cluster_ref(cl), data.crmrisk.lib.workload_ref],
	}
}

cnpg_findings contains f if {
	some cl in input.backup.cnpg.clusters
	cl.backupConfigured
	in_cluster_url(object.get(cl, "endpointURL", ""))
	offsite_checked
	f := {
		"id": "BKP-005",
		"message": sprintf(
			"CloudNativePG Cluster %s used by %s archives to an object store inside the cluster (%s): the backups may not survive the loss of the cluster",
			[lib.qualified(cl.name), data.crmrisk.lib.workload_desc, cl.endpointURL],
		),
		"evidence": [cluster_ref(cl), data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# BKP-006: scheduled backups not being taken (paused, suspended, nowhere to write)
# ---------------------------------------------------------------------------------------------

schedule_findings contains f if {
	some s in input.backup.velero.schedules
	s.paused
	f := object.union(
		{
			"id": "BKP-006",
			"message": sprintf("Velero Schedule %s/%s covering %s is paused: it takes no backups", [s.namespace, s.name, data.crmrisk.lib.workload_desc]),
			"evidence": [{"kind": "Schedule", "namespace": s.namespace, "name": s.name}, data.crmrisk.lib.workload_ref],
		},
		sole_coverage_extra,
	)
}

schedule_findings contains f if {
	some s in active_schedules
	not s.storageLocation.found
	f := object.union(
		{
			"id": "BKP-006",
			"message": sprintf(
				"Velero Schedule %s/%s covering %s writes to BackupStorageLocation %s, which does not exist: its backups fail",
				[s.namespace, s.name, data.crmrisk.lib.workload_desc, s.storageLocation.name],
			),
			"evidence": [{"kind": "Schedule", "namespace": s.namespace, "name": s.name}, {"kind": "BackupStorageLocation", "namespace": s.namespace, "name": s.storageLocation.name}, data.crmrisk.lib.workload_ref],
		},
		sole_coverage_extra,
	)
}

schedule_findings contains f if {
	some s in active_schedules
	s.storageLocation.found
	s.storageLocation.accessMode == "ReadOnly"
	f := object.union(
		{
			"id": "BKP-006",
			"message": sprintf(
				"Velero Schedule %s/%s covering %s writes to BackupStorageLocation %s, which is ReadOnly: no new backups can be stored",
				[s.namespace, s.name, data.crmrisk.lib.workload_desc, s.storageLocation.name],
			),
			"evidence": [{"kind": "Schedule", "namespace": s.namespace, "name": s.name}, {"kind": "BackupStorageLocation", "namespace": s.namespace, "name": s.storageLocation.name}, data.crmrisk.lib.workload_ref],
		},
		sole_coverage_extra,
	)
}

# The cluster's only running ScheduledBackups are suspended.
cnpg_extra(cl) := {"likelihood": 5} if {
	every sb in cl.scheduledBackups {
		sb.suspend
	}
} else := {}

cnpg_findings contains f if {
	some cl in input.backup.cnpg.clusters
	some sb in cl.scheduledBackups
	sb.suspend
	f := object.union(
		{
			"id": "BKP-006",
			"message": sprintf(
				"ScheduledBackup %s of CloudNativePG Cluster %s (used by %s) is suspended: it takes no base backups",
				[lib.qualified(sb.name), lib.qualified(cl.name), data.crmrisk.lib.workload_desc],
			),
			"evidence": [scheduled_backup_ref(sb), cluster_ref(cl), data.crmrisk.lib.workload_ref],
		},
		cnpg_extra(cl),
	)
}

# ---------------------------------------------------------------------------------------------
# BKP-007: Velero backs up the objects but not the volume data
# ---------------------------------------------------------------------------------------------

# In the Velero group: a workload with volumes keeps state. No schedule captures volume data:
# none takes snapshots (snapshotVolumes null, unset in the Schedule, means yes) or backs up every
# volume's files (defaultVolumesToFsBackup, or the pod annotation for opt-in file-system backup
# of named volumes, a string that is not "").
# The test is written out in `every` rather than as a function call per schedule, and comes
# first, as it fails for most workloads; the annotation is read in place rather than by a rule
# (a call on regorus' VM). The input schema requires snapshotVolumes.
stateful_findings contains f if {
	every s in active_schedules {
		s.snapshotVolumes == false
		not s.defaultVolumesToFsBackup == true
	}
	active_schedules[0]
	input.storage.claims[0]
	object.get(input.workload.podAnnotations, "backup.velero.io/backup-volumes", "") == ""
	f := volume_data_finding
}

# One active schedule and one claim, then one active schedule: see interval_finding. The claim
# is named as claim_names and claim_refs would, without reading them.
volume_data_finding := {
	"id": "BKP-007",
	"message": sprintf(
		"Velero Schedules %s/%s cover %s with snapshotVolumes: false and no file-system backup: the data in volumes %s is not backed up, only the objects",
		[s.namespace, s.name, data.crmrisk.lib.workload_desc, c.name],
	),
	"evidence": [data.crmrisk.lib.workload_ref, {"kind": "Schedule", "namespace": s.namespace, "name": s.name}, lib.claim_ref(c)],
} if {
	not active_schedules[1]
	s := active_schedules[0]
	not input.storage.claims[1]
	c := input.storage.claims[0]
} else := {
	"id": "BKP-007",
	"message": sprintf(
		"Velero Schedules %s/%s cover %s with snapshotVolumes: false and no file-system backup: the data in volumes %s is not backed up, only the objects",
		[s.namespace, s.name, data.crmrisk.lib.workload_desc, claim_names],
	),
	"evidence": array.concat([data.crmrisk.lib.workload_ref, {"kind": "Schedule", "namespace": s.namespace, "name": s.name}], claim_refs),
} if {
	not active_schedules[1]
	s := active_schedules[0]
} else := {
	"id": "BKP-007",
	"message": sprintf(
		"Velero Schedules %s cover %s with snapshotVolumes: false and no file-system backup: the data in volumes %s is not backed up, only the objects",
		[concat(", ", sort([sprintf("%s/%s", [s.namespace, s.name]) | some s in active_schedules])), data.crmrisk.lib.workload_desc, claim_names],
	),
	"evidence": array.concat(array.concat([data.crmrisk.lib.workload_ref], [{"kind": "Schedule", "namespace": s.namespace, "name": s.name} | some s in active_schedules]), claim_refs),
}

# ---------------------------------------------------------------------------------------------
# BKP-008: CloudNativePG cluster without backup
# ---------------------------------------------------------------------------------------------

cnpg_findings contains f if {
	some cl in input.backup.cnpg.clusters
	not cl.backupConfigured
	f := {
		"id": "BKP-008",
		"message": sprintf(
			"CloudNativePG Cluster %s used by %s has no backup configured (no barmanObjectStore or backup plugin): no WAL archiving and no base backups, so it cannot be restored",
			[lib.qualified(cl.name), data.crmrisk.lib.workload_desc],
		),
		"evidence": [cluster_ref(cl), data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# BKP-009: CloudNativePG archives WAL but takes no scheduled base backups
# ---------------------------------------------------------------------------------------------

cnpg_findings contains f if {
	some cl in input.backup.cnpg.clusters
	cl.backupConfigured
	not cl.scheduledBackups[0]
	f := {
		"id": "BKP-009",
		"message": sprintf(
			"CloudNativePG Cluster %s used by %s archives WAL but no ScheduledBackup takes base backups: a restore must replay WAL from the last manual backup, if any",
			[lib.qualified(cl.name), data.crmrisk.lib.workload_desc],
		),
		"evidence": [cluster_ref(cl), data.crmrisk.lib.workload_ref],
	}
}
