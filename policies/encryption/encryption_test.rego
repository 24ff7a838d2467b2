package crmrisk.encryption_test

import rego.v1

import data.crmrisk.encryption
import data.crmrisk.fixtures_test as fx

run(inp) := fs if {
	fs := encryption.findings with input as inp
}

ids(inp) := {f.id | some f in run(inp)}

# The findings of one rule.
fired(id, inp) := [f |
	some f in run(inp)
	f.id == id
]

fires(id, inp) if count(fired(id, inp)) > 0

# Exactly one finding of rule `id`, whose message contains every string of `words`.
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

with_claims(claims) := fx.db({"storage": {"claims": claims}})

with_class(provisioner, parameters) := with_claims([fx.template_claim("data", fx.storage_class("sc1", provisioner, parameters))])

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
# ENC-001 unencrypted volume
# ---------------------------------------------------------------------------------------------

test_enc001_ebs_csi_without_encrypted if {
	inp := with_class("ebs.csi.aws.com", {"type": "gp3"})
	one("ENC-001", inp, ["volumeClaimTemplate data of StatefulSet crm/crm-db", "StorageClass sc1 (ebs.csi.aws.com)"])
	f := fired("ENC-001", inp)[0]
	{"kind": "StorageClass", "name": "sc1"} in f.evidence
	{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"} in f.evidence
	silent("ENC-002", inp)
}

test_enc001_in_tree_ebs_encrypted_false if {
	one("ENC-001", with_class("kubernetes.io/aws-ebs", {"encrypted": "false"}), ["kubernetes.io/aws-ebs"])
}

test_enc001_ceph_rbd_without_encrypted if {
	one("ENC-001", with_class("rbd.csi.ceph.com", {"pool": "replicapool"}), ["Ceph RBD"])
}

test_enc001_ceph_rbd_encrypted if {
	inp := with_class("rbd.csi.ceph.com", {"encrypted": "true", "encryptionKMSID": "vault-kms"})
	count(run(inp)) == 0
}

test_enc001_pvc_volume_names_the_claim if {
	sc := fx.storage_class("gp2", "kubernetes.io/aws-ebs", {"type": "gp2"})
	inp := with_claims([fx.volume_claim("uploads", sc)])
	one("ENC-001", inp, ["PersistentVolumeClaim crm/uploads", "StorageClass gp2"])
	{"kind": "PersistentVolumeClaim", "namespace": "crm", "name": "uploads"} in fired("ENC-001", inp)[0].evidence
}

test_enc001_one_finding_per_claim if {
	sc := fx.storage_class("gp2", "ebs.csi.aws.com", {})
	inp := with_claims([fx.template_claim("data", sc), fx.template_claim("wal", sc)])
	count(fired("ENC-001", inp)) == 2
}

test_enc001_encrypted_true_is_case_insensitive if {
	silent("ENC-001", with_class("ebs.csi.aws.com", {"encrypted": "True", "kmsKeyId": "alias/crm"}))
}

test_enc001_off_when_storage_not_required if {
	inp := object.union(with_class("ebs.csi.aws.com", {}), {"params": {"encryption": {"requireEncryptedStorage": false}}})
	silent("ENC-001", inp)
}

# ---------------------------------------------------------------------------------------------
# ENC-002 provider-managed key
# ---------------------------------------------------------------------------------------------

test_enc002_ebs_encrypted_without_kms_key if {
	inp := with_class("ebs.csi.aws.com", {"encrypted": "true"})
	one("ENC-002", inp, ["aws/ebs", "kmsKeyId"])
	silent("ENC-001", inp)
}

test_enc002_gce_pd_without_cmek if {
	one("ENC-002", with_class("pd.csi.storage.gke.io", {"type": "pd-ssd"}), ["disk-encryption-kms-key"])
}

test_enc002_gce_pd_with_cmek if {
	inp := with_class("kubernetes.io/gce-pd", {"disk-encryption-kms-key": "projects/p/locations/l/keyRings/r/cryptoKeys/k"})
	count(run(inp)) == 0
}

test_enc002_azure_disk_without_disk_encryption_set if {
	one("ENC-002", with_class("disk.csi.azure.com", {"skuName": "Premium_LRS"}), ["diskEncryptionSetID"])
}

test_enc002_azure_disk_with_disk_encryption_set_any_case if {
	inp := with_class("kubernetes.io/azure-disk", {"DiskEncryptionSetID": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/diskEncryptionSets/d"})
	count(run(inp)) == 0
}

test_enc002_off_when_storage_not_required if {
	inp := object.union(with_class("disk.csi.azure.com", {}), {"params": {"encryption": {"requireEncryptedStorage": false}}})
	silent("ENC-002", inp)
}

# ---------------------------------------------------------------------------------------------
# ENC-003 cannot verify
# ---------------------------------------------------------------------------------------------

test_enc003_claim_not_found if {
	claim := {"name": "uploads", "source": "volume", "found": false, "storageClassName": null, "storageClass": null}
	one("ENC-003", with_claims([claim]), ["PersistentVolumeClaim crm/uploads", "not found"])
}

test_enc003_no_storage_class if {
	claim := {"name": "data", "source": "volumeClaimTemplate", "found": true, "storageClassName": null, "storageClass": null}
	one("ENC-003", with_claims([claim]), ["no StorageClass"])
}

test_enc003_storage_class_missing if {
	sc := {"name": "fast", "found": false, "isDefault": false, "provisioner": null, "parameters": {}}
	inp := with_claims([fx.template_claim("data", sc)])
	one("ENC-003", inp, ["StorageClass fast", "does not exist"])
	silent("ENC-001", inp)
}

# The unresolved group is tried for a claim that is not found whatever its StorageClass, and
# for a found claim whose StorageClass is missing or null, never for a resolved one.
test_enc003_each_unresolved_claim_once if {
	found_sc := fx.storage_class("gp3", "ebs.csi.aws.com", {"encrypted": "true", "kmsKeyId": "k"})
	missing_sc := {"name": "fast", "found": false, "isDefault": false, "provisioner": null, "parameters": {}}
	claims := [
		object.union(fx.volume_claim("a", found_sc), {"found": false}),
		object.union(fx.volume_claim("b", missing_sc), {"found": false}),
		fx.volume_claim("c", missing_sc),
		{"name": "d", "source": "volume", "found": true, "storageClassName": null, "storageClass": null},
		fx.volume_claim("e", found_sc),
	]
	fs := fired("ENC-003", with_claims(claims))
	print(fs)
	count(fs) == 4
	messages := concat(" | ", sort([f.message | some f in fs]))
	contains(messages, "PersistentVolumeClaim crm/a is used by the pod template but was not found")
	contains(messages, "PersistentVolumeClaim crm/b is used by the pod template but was not found")
	contains(messages, "PersistentVolumeClaim crm/c names StorageClass fast, which does not exist")
	contains(messages, "PersistentVolumeClaim crm/d has no StorageClass")
	not contains(messages, "crm/e")
	silent("ENC-001", with_claims(claims))
	silent("ENC-002", with_claims(claims))
}

test_enc003_unknown_provisioner if {
	inp := with_class("nfs.csi.k8s.io", {"server": "nfs.local"})
	one("ENC-003", inp, ["nfs.csi.k8s.io", "verify encryption at rest by hand"])
	silent("ENC-001", inp)
	silent("ENC-002", inp)
}

test_enc003_off_when_storage_not_required if {
	inp := object.union(with_class("nfs.csi.k8s.io", {}), {"params": {"encryption": {"requireEncryptedStorage": false}}})
	silent("ENC-003", inp)
}

# lib.known_provisioners is written out; it must be exactly the provisioners ENC-001 and ENC-002
# read the parameters of.
test_enc003_known_provisioners_are_the_ones_read if {
	data.crmrisk.lib.known_provisioners == ((data.crmrisk.lib.aws_ebs_provisioners | data.crmrisk.lib.gce_pd_provisioners) | data.crmrisk.lib.azure_disk_provisioners) | data.crmrisk.lib.ceph_rbd_provisioners
}

# at_rest_problem writes lib's provisioner sets out: each provisioner of a set, without
# encryption parameters, gets that set's finding, and ENC-003 only outside known_provisioners.
test_enc001_to_003_provisioner_sets_are_libs if {
	every p in data.crmrisk.lib.aws_ebs_provisioners {
		encryption.at_rest_problem({"provisioner": p}).id == "ENC-001"
		encryption.at_rest_problem({"provisioner": p, "parameters": {"encrypted": "true"}}).id == "ENC-002"
	}
	every p in data.crmrisk.lib.gce_pd_provisioners {
		encryption.at_rest_problem({"provisioner": p}).id == "ENC-002"
	}
	every p in data.crmrisk.lib.azure_disk_provisioners {
		encryption.at_rest_problem({"provisioner": p}).id == "ENC-002"
	}
	every p in data.crmrisk.lib.ceph_rbd_provisioners {
		encryption.at_rest_problem({"provisioner": p}).id == "ENC-001"
	}
	encryption.at_rest_problem({"provisioner": "nfs.csi.k8s.io"}).id == "ENC-003"
}

# at_rest_problem reads parameters with sc_value, lib.sc_param for a lower-case key: the same
# value for keys in any case, several keys that differ only in case, padded or upper-case values,
# and a missing key.
test_sc_value_is_lib_sc_param if {
	classes := [
		{"parameters": {}},
		{"parameters": {"type": "gp3"}},
		{"parameters": {"encrypted": "true", "kmsKeyId": "arn:aws:kms:k"}},
		{"parameters": {"Encrypted": " TRUE ", "KMSKEYID": ""}},
		{"parameters": {"encrypted": "false", "ENCRYPTED": "true", "Encrypted": "yes"}},
		{"parameters": {"DiskEncryptionSetID": "/d", "disk-encryption-kms-key": "projects/p/k"}},
	]
	keys := ["encrypted", "kmsKeyId", "disk-encryption-kms-key", "diskEncryptionSetID", "type"]
	every sc in classes {
		every key in keys {
			encryption.sc_value(sc, lower(key)) == data.crmrisk.lib.sc_param(sc, key)
		}
	}
}

# ENC-005 writes lib.tls_sslmodes out: those modes, and only those, are not reported.
test_enc005_tls_sslmodes_are_libs if {
	every mode in data.crmrisk.lib.tls_sslmodes {
		silent("ENC-005", client(pgsslmode(mode)))
	}
	every mode in {"disable", "allow", "prefer"} {
		fires("ENC-005", client(pgsslmode(mode)))
	}
}

# ---------------------------------------------------------------------------------------------
# ENC-004 Ingress without TLS
# ---------------------------------------------------------------------------------------------

ingress(hosts, tls_hosts) := fx.web({"ingresses": [{
	"name": "crm", "className": "nginx", "hosts": hosts,
	"tlsHosts": tls_hosts, "annotations": {},
}]})

test_enc004_host_without_tls if {
	inp := ingress(["crm.example.com", "api.example.com"], ["crm.example.com"])
	one("ENC-004", inp, ["Ingress crm/crm", "api.example.com", "Deployment crm/crm-web"])
	f := fired("ENC-004", inp)[0]
	not contains(f.message, "crm.example.com,")
	{"kind": "Ingress", "namespace": "crm", "name": "crm"} in f.evidence
}

test_enc004_no_tls_at_all if {
	one("ENC-004", ingress(["crm.example.com"], []), ["crm.example.com"])
}

test_enc004_wildcard_tls_covers_one_label if {
	silent("ENC-004", ingress(["crm.example.com", "api.example.com"], ["*.example.com"]))
	one("ENC-004", ingress(["a.b.example.com"], ["*.example.com"]), ["a.b.example.com"])
}

test_enc004_tls_entry_without_hosts_covers_every_host if {
	silent("ENC-004", ingress(["crm.example.com", "api.example.com"], ["*"]))
}

test_enc004_catch_all_rule_without_tls if {
	one("ENC-004", ingress([], []), ["routes every host"])
}

test_enc004_catch_all_rule_with_default_certificate if {
	silent("ENC-004", ingress([], ["crm.example.com"]))
}

test_enc004_one_finding_per_ingress if {
	inp := fx.web({"ingresses": [
		{"name": "crm", "className": "nginx", "hosts": ["crm.example.com"], "tlsHosts": [], "annotations": {}},
		{"name": "catch-all", "className": "nginx", "hosts": [], "tlsHosts": [], "annotations": {}},
		{"name": "api", "className": "nginx", "hosts": ["api.example.com"], "tlsHosts": ["api.example.com"], "annotations": {}},
	]})
	messages := concat(" | ", sort([f.message | some f in fired("ENC-004", inp)]))
	print(messages)
	count(fired("ENC-004", inp)) == 2
	contains(messages, "Ingress crm/catch-all routes every host")
	contains(messages, "Ingress crm/crm routes crm.example.com to")
}

test_enc004_off_when_ingress_tls_not_required if {
	inp := object.union(ingress(["crm.example.com"], []), {"params": {"encryption": {"requireIngressTLS": false}}})
	silent("ENC-004", inp)
}

# ---------------------------------------------------------------------------------------------
# ENC-005 PostgreSQL connection without TLS
# ---------------------------------------------------------------------------------------------

# The web container with `facts` about its strings merged in: `pgsslmode`, `connections` and
# `literalCredentials`, what the context builder derives from env and args. How it derives them
# (which strings are PostgreSQL connections, which names say credential) is tested in
# operator/src/context/strings.rs; here, what the rules make of the facts.
client(facts) := fx.web({"containers": [object.union(
	object.union(fx.no_string_facts, {
		"name": "web", "image": "ghcr.io/example/crm-web:1.4.2", "init": false,
		"readinessProbe": true, "livenessProbe": true, "env": [], "args": [],
	}),
	facts,
)]})

pgsslmode(mode) := {"pgsslmode": {"set": true, "values": [mode]}}

connections(list) := {"connections": list}

no_mesh(inp) := object.union(inp, {"mesh": {"istio": {"injected": false, "peerAuthenticationMode": null}}})

test_enc005_pgsslmode_disable if {
	one("ENC-005", client(pgsslmode("disable")), ["container web", "PGSSLMODE=disable"])
}

test_enc005_pgsslmode_prefer_is_not_tls if {
	one("ENC-005", client(pgsslmode("prefer")), ["PGSSLMODE=prefer"])
}

test_enc005_pgsslmode_require if {
	silent("ENC-005", client(pgsslmode("require")))
}

test_enc005_url_sslmode_disable if {
	inp := client(connections([fx.connection("DATABASE_URL", {"sslmodes": ["disable"]})]))
	one("ENC-005", inp, ["sslmode=disable", "env DATABASE_URL"])
}

test_enc005_url_verify_full if {
	silent("ENC-005", client(connections([fx.connection("DATABASE_URL", {"sslmodes": ["verify-full"]})])))
}

test_enc005_each_weak_sslmode_of_a_string if {
	inp := client(connections([fx.connection("DATABASE_URL", {"sslmodes": ["allow", "disable", "require"]})]))
	count(fired("ENC-005", inp)) == 2
}

test_enc005_keyword_string_in_args if {
	inp := client(connections([fx.connection(null, {"sslmodes": ["allow"]})]))
	one("ENC-005", inp, ["sslmode=allow", "(args)"])
}

test_enc005_connection_without_sslmode_defaults_to_prefer if {
	inp := client(connections([fx.connection("PG_DSN", {})]))
	one("ENC-005", inp, ["without sslmode", "prefer", "env PG_DSN"])
}

test_enc005_pgsslmode_covers_connection_without_sslmode if {
	inp := client(object.union(pgsslmode("verify-ca"), connections([fx.connection("DATABASE_URL", {})])))
	silent("ENC-005", inp)
}

test_enc005_pgsslmode_from_secret_is_trusted if {
	from_secret := {"pgsslmode": {"set": true, "values": []}}
	silent("ENC-005", client(object.union(from_secret, connections([fx.connection("DATABASE_URL", {})]))))
}

test_enc005_connection_string_overrides_pgsslmode if {
	inp := client(object.union(pgsslmode("verify-full"), connections([fx.connection(null, {"sslmodes": ["disable"]})])))
	one("ENC-005", inp, ["sslmode=disable"])
}

test_enc005_jdbc_ssl_true if {
	silent("ENC-005", client(connections([fx.connection("SPRING_DATASOURCE_URL", {"jdbcSslTrue": true})])))
}

test_enc005_not_a_postgres_connection if {
	inp := client(connections([fx.connection("REDIS_URL", {"postgres": false, "urlPassword": true})]))
	silent("ENC-005", inp)
}

test_enc005_likelihood_lower_in_a_mesh if {
	inp := client(pgsslmode("disable"))
	fired("ENC-005", inp)[0].likelihood == 2
	fired("ENC-005", no_mesh(inp))[0].likelihood == 3
}

test_enc005_message_never_shows_the_connection_string if {
	inp := client({
		"env": [fx.env("DATABASE_URL", "postgres://crm:hunter2@crm-db/crm?sslmode=disable")],
		"connections": [fx.connection("DATABASE_URL", {"sslmodes": ["disable"], "urlPassword": true})],
	})
	fs := run(inp)
	count(fs) > 0
	every f in fs {
		not contains(f.message, "hunter2")
	}
}

# connection_findings: each connection gets each of its findings, ENC-005 and ENC-006 together.
test_enc005_and_enc006_of_each_connection if {
	inp := client(connections([
		fx.connection("DATABASE_URL", {"urlPassword": true}),
		fx.connection(null, {"sslmodes": ["allow", "disable"], "urlPassword": true}),
		fx.connection("REPLICA_URL", {"sslmodes": ["verify-full"]}),
	]))
	enc005 := concat(" | ", sort([f.message | some f in fired("ENC-005", inp)]))
	print(enc005)
	count(fired("ENC-005", inp)) == 3
	contains(enc005, "PostgreSQL (env DATABASE_URL) without sslmode")
	contains(enc005, "sslmode=allow (args)")
	contains(enc005, "sslmode=disable (args)")
	enc006 := concat(" | ", sort([f.message | some f in fired("ENC-006", inp)]))
	print(enc006)
	count(fired("ENC-006", inp)) == 2
	contains(enc006, "URL (args)")
	contains(enc006, "URL (env DATABASE_URL)")
}

test_enc005_off_when_database_tls_not_required if {
	inp := object.union(client(pgsslmode("disable")), {"params": {"encryption": {"requireDatabaseTLS": false}}})
	silent("ENC-005", inp)
}

# ---------------------------------------------------------------------------------------------
# ENC-006 credentials in clear
# ---------------------------------------------------------------------------------------------

test_enc006_literal_password if {
	inp := client({"env": [fx.env("DB_PASSWORD", "s3cret!")], "literalCredentials": ["DB_PASSWORD"]})
	one("ENC-006", inp, ["container web", "DB_PASSWORD", "secretKeyRef", "Deployment"])
	not contains(fired("ENC-006", inp)[0].message, "s3cret")
}

test_enc006_one_finding_per_credential if {
	inp := client({"literalCredentials": ["GITHUB_TOKEN", "STRIPE_API_KEY"]})
	count(fired("ENC-006", inp)) == 2
}

test_enc006_literal_values_alone_are_not_credentials if {
	# The rule trusts the builder's judgment of names: literal values it did not list are fine.
	silent("ENC-006", client({"env": [fx.env("TOKENIZER_MODEL", "bert"), fx.env("LOG_LEVEL", "info")]}))
}

test_enc006_password_in_url if {
	inp := client(connections([fx.connection(null, {"urlPassword": true})]))
	one("ENC-006", inp, ["password written into a URL", "(args)"])
}

test_enc006_password_in_env_url if {
	inp := client(connections([fx.connection("AMQP_URL", {"postgres": false, "urlPassword": true})]))
	one("ENC-006", inp, ["password written into a URL", "(env AMQP_URL)"])
}

test_enc006_secret_ref_is_fine if {
	silent("ENC-006", fx.hardened_web)
}

# ---------------------------------------------------------------------------------------------
# ENC-007 no mutual TLS for confidential data
# ---------------------------------------------------------------------------------------------

mesh(istio_injected, mode, linkerd) := fx.db({"mesh": {
	"istio": {"injected": istio_injected, "peerAuthenticationMode": mode},
	"linkerd": {"injected": linkerd},
}})

test_enc007_no_mesh if {
	one("ENC-007", mesh(false, null, false), ["confidential", "Service crm-db", "neither an Istio nor a Linkerd mesh"])
}

test_enc007_istio_permissive if {
	one("ENC-007", mesh(true, "PERMISSIVE", false), ["PeerAuthentication mode PERMISSIVE"])
}

test_enc007_istio_without_peer_authentication if {
	one("ENC-007", mesh(true, null, false), ["no PeerAuthentication"])
}

test_enc007_strict_peer_authentication_without_sidecar if {
	one("ENC-007", mesh(false, "STRICT", false), ["neither"])
}

test_enc007_istio_strict if {
	silent("ENC-007", mesh(true, "STRICT", false))
}

test_enc007_linkerd if {
	silent("ENC-007", mesh(false, null, true))
}

test_enc007_only_for_confidential_or_restricted if {
	inp := object.union(mesh(false, null, false), {"classification": {"dataClassification": "internal"}})
	silent("ENC-007", inp)
	restricted := object.union(mesh(false, null, false), {"classification": {"dataClassification": "restricted"}})
	one("ENC-007", restricted, ["restricted"])
}

test_enc007_only_when_reached_through_a_service if {
	silent("ENC-007", object.union(mesh(false, null, false), {"services": []}))
}

# The lookup of the mesh state by Istio injected and mode: each Istio state, with Linkerd injected too,
# is mtls (no finding); DISABLE is named like PERMISSIVE.
test_enc007_mesh_states if {
	silent("ENC-007", mesh(true, "PERMISSIVE", true))
	silent("ENC-007", mesh(true, null, true))
	silent("ENC-007", mesh(true, "STRICT", true))
	one("ENC-007", mesh(true, "DISABLE", false), ["PeerAuthentication mode DISABLE", "not mutually authenticated"])
	one("ENC-007", mesh(true, null, false), ["so PERMISSIVE): pod-to-pod"])
	one("ENC-007", mesh(false, "DISABLE", false), ["neither an Istio nor a Linkerd mesh"])
	one("ENC-007", mesh(false, "PERMISSIVE", false), ["neither an Istio nor a Linkerd mesh"])
}

# mesh_finding's two forms: one Service read in place; several named in sorted order, with their
# evidence after the workload's in input order.
test_enc007_one_service if {
	inp := mesh(false, null, false)
	one("ENC-007", inp, ["reached through Service crm-db, but"])
	fired("ENC-007", inp)[0].evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Service", "namespace": "crm", "name": "crm-db"},
	]
}

test_enc007_several_services if {
	inp := object.union(mesh(false, null, false), {"services": [
		{"name": "crm-db-rw", "type": "ClusterIP", "ports": []},
		{"name": "crm-db", "type": "ClusterIP", "ports": []},
	]})
	one("ENC-007", inp, ["reached through Service crm-db, crm-db-rw, but"])
	fired("ENC-007", inp)[0].evidence == [
		{"kind": "StatefulSet", "namespace": "crm", "name": "crm-db"},
		{"kind": "Service", "namespace": "crm", "name": "crm-db-rw"},
		{"kind": "Service", "namespace": "crm", "name": "crm-db"},
	]
}

problem_id(sc) := encryption.at_rest_problem(sc).id if {
	encryption.at_rest_problem(sc)
} else := "none"

# at_rest_problem's first body reads the family's deciding parameter as lib.sc_param does (keys in
# any case, several keys that differ only in case, padded or upper-case values, a missing key).
test_at_rest_problem_reads_parameters_as_lib_sc_param if {
	classes := [
		{"parameters": {}},
		{"parameters": {"type": "gp3"}},
		{"parameters": {"encrypted": "true", "kmsKeyId": "arn:aws:kms:k"}},
		{"parameters": {"Encrypted": " TRUE ", "KMSKEYID": ""}},
		{"parameters": {"encrypted": "false", "ENCRYPTED": "true", "Encrypted": "yes"}},
		{"parameters": {"ENCRYPTED": "TRUE", "encrypted": "false"}},
		{"parameters": {"DiskEncryptionSetID": "/d", "disk-encryption-kms-key": "projects/p/k"}},
		{"parameters": {"diskEncryptionSetID": "  ", "Disk-Encryption-KMS-Key": " "}},
		{"parameters": {"DISKENCRYPTIONSETID": "", "diskencryptionsetid": "/d"}},
	]
	every params in classes {
		aws := object.union(params, {"provisioner": "ebs.csi.aws.com"})
		(problem_id(aws) == "ENC-001") == (data.crmrisk.lib.sc_param(aws, "encrypted") != "true")
		rbd := object.union(params, {"provisioner": "rbd.csi.ceph.com"})
		(problem_id(rbd) == "ENC-001") == (data.crmrisk.lib.sc_param(rbd, "encrypted") != "true")
		gce := object.union(params, {"provisioner": "pd.csi.storage.gke.io"})
		(problem_id(gce) == "ENC-002") == (data.crmrisk.lib.sc_param(gce, "disk-encryption-kms-key") == "")
		azure := object.union(params, {"provisioner": "disk.csi.azure.com"})
		(problem_id(azure) == "ENC-002") == (data.crmrisk.lib.sc_param(azure, "diskEncryptionSetID") == "")
	}
}
