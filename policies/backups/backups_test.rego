package crmrisk.backups_test

import rego.v1

import data.crmrisk.backups
import data.crmrisk.fixtures_test as fx

run(inp) := fs if {
	fs := backups.findings with input as inp
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

tools(velero, cnpg) := {"velero": velero, "cnpg": cnpg}

# The hardened database with these Velero Schedules (the CloudNativePG cluster stays healthy).
schedules(list) := fx.db({"backup": {"velero": {"schedules": list}}})

schedule(p) := object.union(fx.daily_schedule, p)

cnpg(p) := fx.db({"backup": {"cnpg": {"clusters": [object.union(fx.healthy_cnpg, p)]}}})

location(p) := schedules([schedule({"storageLocation": p})])

no_offsite_check(inp) := object.union(inp, {"params": {"backups": {"requireOffsite": false}}})

# ---------------------------------------------------------------------------------------------
# hardened inputs
# ---------------------------------------------------------------------------------------------

test_hardened_database_is_clean if {
	print(run(fx.hardened))
	count(run(fx.hardened)) == 0
}

# findings picks the Velero and CloudNativePG groups' sets: both at once here.
test_velero_and_cloudnativepg_findings_together if {
	inp := object.union(
		schedules([schedule({"ttl": "72h0m0s", "ttlHours": 72})]),
		{"backup": {"cnpg": {"clusters": [object.union(fx.healthy_cnpg, {"backupConfigured": false})]}}},
	)
	ids(inp) == {"BKP-004", "BKP-008"}
}

test_hardened_web_is_clean if {
	print(run(fx.hardened_web))
	count(run(fx.hardened_web)) == 0
}

# ---------------------------------------------------------------------------------------------
# BKP-001 no backup tool
# ---------------------------------------------------------------------------------------------

nothing_installed(inp) := object.union(inp, {"backup": {
	"tools": tools(false, false),
	"velero": {"schedules": []}, "cnpg": {"clusters": []},
}})

test_bkp001_no_tool_for_volumes if {
	inp := nothing_installed(fx.hardened)
	one("BKP-001", inp, ["StatefulSet crm/crm-db", "volumes data", "neither Velero nor CloudNativePG"])
	silent("BKP-002", inp)
}

test_bkp001_no_tool_for_a_database_without_volumes if {
	inp := nothing_installed(fx.db({"storage": {"claims": []}}))
	one("BKP-001", inp, ["keeps state (a database)"])
}

# BKP-001 and BKP-002 sit behind one test of [Velero installed, no schedule].
test_bkp001_bkp002_without_velero_next_to_a_schedule if {
	none := object.union(fx.hardened, {"backup": {"tools": tools(false, false)}})
	one("BKP-001", none, ["neither Velero nor CloudNativePG"])
	silent("BKP-002", none)
	cnpg_only := object.union(fx.hardened, {"backup": {"tools": tools(false, true)}})
	silent("BKP-001", cnpg_only)
	silent("BKP-002", cnpg_only)
}

test_bkp001_not_for_stateless_workloads if {
	silent("BKP-001", nothing_installed(fx.hardened_web))
}

test_bkp001_not_for_an_in_memory_cache if {
	cache := fx.db({
		"storage": {"claims": []},
		"containers": [object.union(fx.postgres_container, {"name": "redis", "image": "redis:7.4", "args": []})],
	})
	silent("BKP-001", nothing_installed(cache))
	durable := object.union(cache, {"containers": [object.union(fx.postgres_container, {"name": "redis", "image": "redis:7.4", "args": ["--appendonly", "yes"]})]})
	one("BKP-001", nothing_installed(durable), ["keeps state (a database)"])
}

test_bkp001_not_when_a_tool_is_installed if {
	silent("BKP-001", fx.db({"backup": {"tools": tools(false, true), "velero": {"schedules": []}}}))
}

# ---------------------------------------------------------------------------------------------
# BKP-002 not covered
# ---------------------------------------------------------------------------------------------

test_bkp002_no_schedule_selects_the_workload if {
	inp := schedules([])
	one("BKP-002", inp, ["volumes data", "no Velero Schedule selects"])
	f := fired("BKP-002", inp)[0]
	{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"} in f.evidence
}

test_bkp002_only_cloudnativepg_installed if {
	inp := fx.db({"backup": {"tools": tools(false, true), "velero": {"schedules": []}}})
	one("BKP-002", inp, ["Velero is not installed"])
}

test_bkp002_names_every_volume if {
	sc := fx.encrypted_ebs
	inp := fx.db({
		"storage": {"claims": [fx.template_claim("data", sc), fx.volume_claim("uploads", sc)]},
		"backup": {"velero": {"schedules": []}},
	})
	one("BKP-002", inp, ["volumes data, uploads"])
	{"kind": "PersistentVolumeClaim", "namespace": "crm", "name": "uploads"} in fired("BKP-002", inp)[0].evidence
}

test_bkp002_covered_by_a_schedule if {
	silent("BKP-002", fx.hardened)
}

test_bkp002_not_for_stateless_workloads if {
	silent("BKP-002", fx.web({"backup": {"velero": {"schedules": []}}}))
}

# ---------------------------------------------------------------------------------------------
# BKP-003 interval
# ---------------------------------------------------------------------------------------------

test_bkp003_weekly_schedule if {
	inp := schedules([schedule({"name": "weekly", "schedule": "0 3 * * 0", "intervalHours": 168})])
	one("BKP-003", inp, ["every 168 hours", "velero/weekly every 168h", "24 hours allowed"])
	fired("BKP-003", inp)[0].evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Schedule", "namespace": "velero", "name": "weekly"},
	]
}

# BKP-003, BKP-004 and BKP-007 build their finding in one form for one active schedule and in
# another for several: these tests hold the second.
test_bkp003_two_slow_schedules if {
	inp := schedules([schedule({"name": "weekly", "intervalHours": 168}), schedule({"name": "fortnightly", "intervalHours": 336})])
	one("BKP-003", inp, ["every 168 hours (velero/fortnightly every 336h, velero/weekly every 168h)"])
	f := fired("BKP-003", inp)[0]
	f.evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Schedule", "namespace": "velero", "name": "weekly"},
		{"kind": "Schedule", "namespace": "velero", "name": "fortnightly"},
	]
}

test_bkp003_unparsable_cron_next_to_a_slow_schedule if {
	inp := schedules([schedule({"name": "odd", "intervalHours": null}), schedule({"name": "weekly", "intervalHours": 168})])
	one("BKP-003", inp, ["every 168 hours (velero/weekly every 168h)"])
	f := fired("BKP-003", inp)[0]
	not {"kind": "Schedule", "namespace": "velero", "name": "odd"} in f.evidence
}

test_bkp003_most_frequent_schedule_counts if {
	inp := schedules([fx.daily_schedule, schedule({"name": "weekly", "intervalHours": 168})])
	silent("BKP-003", inp)
}

test_bkp003_paused_schedules_do_not_count if {
	inp := schedules([schedule({"paused": true}), schedule({"name": "weekly", "intervalHours": 168})])
	one("BKP-003", inp, ["every 168 hours"])
}

test_bkp003_unparsable_cron_is_skipped if {
	silent("BKP-003", schedules([schedule({"schedule": "@every 36h", "intervalHours": null})]))
}

test_bkp003_not_without_an_active_interval if {
	silent("BKP-003", schedules([schedule({"name": "weekly", "intervalHours": 168, "paused": true})]))
	silent("BKP-003", schedules([schedule({"name": "odd", "intervalHours": null}), schedule({"name": "weekly", "intervalHours": 168, "paused": true})]))
	silent("BKP-003", schedules([schedule({"name": "hourly", "intervalHours": 1}), schedule({"name": "weekly", "intervalHours": 168})]))
}

test_bkp003_follows_max_interval_param if {
	inp := object.union(
		schedules([schedule({"intervalHours": 168})]),
		{"params": {"backups": {"maxIntervalHours": 168}}},
	)
	silent("BKP-003", inp)
}

test_bkp003_not_for_stateless_workloads if {
	silent("BKP-003", fx.web({"backup": {"velero": {"schedules": [schedule({"intervalHours": 168})]}}}))
}

# ---------------------------------------------------------------------------------------------
# BKP-004 retention
# ---------------------------------------------------------------------------------------------

test_bkp004_short_velero_ttl if {
	inp := schedules([schedule({"ttl": "72h0m0s", "ttlHours": 72})])
	one("BKP-004", inp, ["at most 3 days", "velero/daily ttl 72h0m0s", "7 days required"])
}

test_bkp004_default_ttl_is_named if {
	inp := object.union(
		schedules([schedule({"ttl": null, "ttlHours": 720})]),
		{
			"params": {"backups": {"minRetentionDays": 45}},
			"backup": {"cnpg": {"clusters": [object.union(fx.healthy_cnpg, {"retentionDays": 90, "retentionPolicy": "90d"})]}},
		},
	)
	one("BKP-004", inp, ["at most 30 days", "velero/daily ttl 720h (default)", "45 days required"])
}

test_bkp004_two_short_ttls if {
	inp := schedules([schedule({"ttl": "72h0m0s", "ttlHours": 72}), schedule({"name": "two-days", "ttl": null, "ttlHours": 48})])
	one("BKP-004", inp, ["at most 3 days (velero/daily ttl 72h0m0s, velero/two-days ttl 48h (default))"])
	count(fired("BKP-004", inp)[0].evidence) == 3
}

test_bkp004_longest_kept_schedule_counts if {
	inp := schedules([schedule({"ttl": "72h0m0s", "ttlHours": 72}), schedule({"name": "monthly", "ttlHours": 2160})])
	silent("BKP-004", inp)
}

test_bkp004_follows_min_retention_param if {
	inp := object.union(schedules([schedule({"ttlHours": 72})]), {"params": {"backups": {"minRetentionDays": 3}}})
	silent("BKP-004", inp)
}

test_bkp004_unparsable_ttl_is_skipped if {
	silent("BKP-004", schedules([schedule({"ttl": "forever", "ttlHours": null})]))
	inp := schedules([schedule({"ttl": "forever", "ttlHours": null}), schedule({"name": "short", "ttl": "72h0m0s", "ttlHours": 72})])
	one("BKP-004", inp, ["at most 3 days (velero/short ttl 72h0m0s)"])
}

# A ttl of 0 and a paused schedule count for nothing: BKP-004 needs an active schedule with a ttl.
test_bkp004_not_without_an_active_ttl if {
	silent("BKP-004", schedules([schedule({"ttl": "0s", "ttlHours": 0})]))
	silent("BKP-004", schedules([schedule({"paused": true, "ttl": "72h0m0s", "ttlHours": 72})]))
	inp := schedules([schedule({"ttl": "0s", "ttlHours": 0}), schedule({"name": "short", "ttl": "72h0m0s", "ttlHours": 72})])
	one("BKP-004", inp, ["at most 3 days (velero/short ttl 72h0m0s)"])
}

test_bkp004_short_cloudnativepg_retention if {
	inp := cnpg({"retentionPolicy": "3d", "retentionDays": 3})
	one("BKP-004", inp, ["CloudNativePG Cluster crm/crm-pg", "retentionPolicy 3d", "3 days"])
	{"kind": "Cluster", "namespace": "crm", "name": "crm-pg"} in fired("BKP-004", inp)[0].evidence
}

test_bkp004_cloudnativepg_without_retention_keeps_everything if {
	silent("BKP-004", cnpg({"retentionPolicy": null, "retentionDays": null}))
}

# ---------------------------------------------------------------------------------------------
# BKP-005 offsite
# ---------------------------------------------------------------------------------------------

test_bkp005_location_without_provider if {
	inp := location({"provider": null})
	one("BKP-005", inp, ["Velero Schedule velero/daily", "BackupStorageLocation offsite", "has no provider"])
	{"kind": "BackupStorageLocation", "namespace": "velero", "name": "offsite"} in fired("BKP-005", inp)[0].evidence
}

test_bkp005_location_without_bucket if {
	one("BKP-005", location({"bucket": ""}), ["has no bucket"])
}

test_bkp005_in_cluster_object_store if {
	one("BKP-005", location({"s3Url": "http://minio.velero.svc:9000"}), ["inside the cluster", "minio.velero.svc"])
	one("BKP-005", location({"s3Url": "http://minio.minio.svc.cluster.local"}), ["inside the cluster"])
}

test_bkp005_external_object_store if {
	silent("BKP-005", location({"s3Url": "https://s3.eu-central-1.example.net"}))
}

test_bkp005_cloudnativepg_without_destination if {
	one("BKP-005", cnpg({"destinationPath": null}), ["crm/crm-pg", "no barmanObjectStore destinationPath"])
}

test_bkp005_cloudnativepg_in_cluster_endpoint if {
	one("BKP-005", cnpg({"endpointURL": "http://minio.crm.svc:9000"}), ["crm/crm-pg", "inside the cluster"])
}

test_bkp005_cloudnativepg_plugin_has_no_destination_path if {
	silent("BKP-005", cnpg({"method": "plugin", "destinationPath": null}))
}

test_bkp005_off_when_offsite_not_required if {
	silent("BKP-005", no_offsite_check(location({"provider": null})))
	silent("BKP-005", no_offsite_check(cnpg({"destinationPath": null})))
}

# ---------------------------------------------------------------------------------------------
# BKP-006 not running
# ---------------------------------------------------------------------------------------------

test_bkp006_only_schedule_paused if {
	inp := schedules([schedule({"paused": true})])
	one("BKP-006", inp, ["Velero Schedule velero/daily", "is paused"])
	fired("BKP-006", inp)[0].likelihood == 5
	silent("BKP-002", inp)
}

test_bkp006_paused_next_to_an_active_schedule if {
	inp := schedules([schedule({"name": "hourly", "paused": true}), fx.daily_schedule])
	one("BKP-006", inp, ["velero/hourly"])
	not fired("BKP-006", inp)[0].likelihood
}

test_bkp006_location_missing if {
	inp := location({"name": "gone", "found": false, "provider": null, "bucket": null, "region": null, "accessMode": null})
	one("BKP-006", inp, ["BackupStorageLocation gone", "does not exist"])
	fired("BKP-006", inp)[0].likelihood == 5
	silent("BKP-005", inp)
}

test_bkp006_location_read_only if {
	one("BKP-006", location({"accessMode": "ReadOnly"}), ["ReadOnly"])
}

test_bkp006_only_scheduled_backup_suspended if {
	inp := cnpg({"scheduledBackups": [object.union(fx.healthy_cnpg.scheduledBackups[0], {"suspend": true})]})
	one("BKP-006", inp, ["ScheduledBackup crm/nightly", "CloudNativePG Cluster crm/crm-pg", "suspended"])
	fired("BKP-006", inp)[0].likelihood == 5
}

test_bkp006_suspended_next_to_an_active_scheduled_backup if {
	nightly := fx.healthy_cnpg.scheduledBackups[0]
	inp := cnpg({"scheduledBackups": [nightly, object.union(nightly, {"name": "hourly", "suspend": true})]})
	one("BKP-006", inp, ["crm/hourly"])
	not fired("BKP-006", inp)[0].likelihood
}

# The schedules pass one test in one loop before the BKP-005 and BKP-006 rules run: a broken
# schedule next to a healthy one still reaches them.
test_bkp005_bkp006_broken_schedule_next_to_a_healthy_one if {
	broken := schedule({"name": "hourly", "storageLocation": {"bucket": null, "accessMode": "ReadOnly"}})
	inp := schedules([fx.daily_schedule, broken])
	one("BKP-005", inp, ["velero/hourly", "has no bucket"])
	one("BKP-006", inp, ["velero/hourly", "ReadOnly"])
}

test_bkp006_velero_not_for_stateless_workloads if {
	silent("BKP-006", fx.web({"backup": {"velero": {"schedules": [schedule({"paused": true})]}}}))
}

# ---------------------------------------------------------------------------------------------
# BKP-007 volume data not backed up
# ---------------------------------------------------------------------------------------------

test_bkp007_snapshots_off if {
	inp := schedules([schedule({"snapshotVolumes": false})])
	one("BKP-007", inp, ["velero/daily", "snapshotVolumes: false", "volumes data"])
}

test_bkp007_file_system_backup_by_default if {
	silent("BKP-007", schedules([schedule({"snapshotVolumes": false, "defaultVolumesToFsBackup": true})]))
}

test_bkp007_file_system_backup_by_annotation if {
	inp := object.union(
		schedules([schedule({"snapshotVolumes": false})]),
		{"workload": {"podAnnotations": {"backup.velero.io/backup-volumes": "data"}}},
	)
	silent("BKP-007", inp)
}

test_bkp007_file_system_backup_off_or_annotation_empty if {
	one("BKP-007", schedules([schedule({"snapshotVolumes": false, "defaultVolumesToFsBackup": false})]), ["velero/daily"])
	inp := object.union(
		schedules([schedule({"snapshotVolumes": false})]),
		{"workload": {"podAnnotations": {"backup.velero.io/backup-volumes": ""}}},
	)
	one("BKP-007", inp, ["velero/daily"])
}

test_bkp007_snapshot_volumes_unset_means_true if {
	silent("BKP-007", schedules([schedule({"snapshotVolumes": null})]))
}

test_bkp007_one_schedule_snapshots if {
	silent("BKP-007", schedules([schedule({"name": "objects", "snapshotVolumes": false}), fx.daily_schedule]))
}

test_bkp007_two_schedules_without_snapshots if {
	inp := schedules([schedule({"name": "weekly", "snapshotVolumes": false}), schedule({"snapshotVolumes": false})])
	one("BKP-007", inp, ["Velero Schedules velero/daily, velero/weekly cover"])
	f := fired("BKP-007", inp)[0]
	f.evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Schedule", "namespace": "velero", "name": "weekly"},
		{"kind": "Schedule", "namespace": "velero", "name": "daily"},
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
	]
}

test_bkp007_claims_in_evidence if {
	sc := fx.encrypted_ebs
	one_volume := schedules([schedule({"snapshotVolumes": false})])
	inp := object.union(one_volume, {"storage": {"claims": [fx.volume_claim("uploads", sc)]}})
	one("BKP-007", inp, ["the data in volumes uploads is not"])
	fired("BKP-007", inp)[0].evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Schedule", "namespace": "velero", "name": "daily"},
		{"kind": "PersistentVolumeClaim", "namespace": "crm", "name": "uploads"},
	]
	two := object.union(one_volume, {"storage": {"claims": [fx.template_claim("data", sc), fx.volume_claim("uploads", sc)]}})
	one("BKP-007", two, ["the data in volumes data, uploads is not"])
	fired("BKP-007", two)[0].evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Schedule", "namespace": "velero", "name": "daily"},
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "PersistentVolumeClaim", "namespace": "crm", "name": "uploads"},
	]
}

test_bkp007_not_without_volumes if {
	silent("BKP-007", fx.db({
		"storage": {"claims": []},
		"backup": {"velero": {"schedules": [schedule({"snapshotVolumes": false})]}},
	}))
}

# ---------------------------------------------------------------------------------------------
# BKP-008 CloudNativePG without backup
# ---------------------------------------------------------------------------------------------

test_bkp008_cluster_without_backup if {
	inp := cnpg({"backupConfigured": false, "method": null, "destinationPath": null, "scheduledBackups": []})
	one("BKP-008", inp, ["CloudNativePG Cluster crm/crm-pg", "StatefulSet crm/crm-db", "no WAL archiving"])
	silent("BKP-009", inp)
}

test_bkp008_applies_to_stateless_clients_too if {
	one("BKP-008", fx.web({"backup": {"cnpg": {"clusters": [object.union(fx.healthy_cnpg, {"backupConfigured": false})]}}}), ["Deployment crm/crm-web"])
}

test_bkp008_cluster_with_backup if {
	silent("BKP-008", fx.hardened)
}

# ---------------------------------------------------------------------------------------------
# BKP-009 CloudNativePG without scheduled base backups
# ---------------------------------------------------------------------------------------------

test_bkp009_no_scheduled_backup if {
	one("BKP-009", cnpg({"scheduledBackups": []}), ["crm/crm-pg", "no ScheduledBackup"])
}

test_bkp009_with_scheduled_backup if {
	silent("BKP-009", fx.hardened)
}
