# Encryption: data at rest (the volumes' StorageClasses), data in transit (Ingress TLS,
# PostgreSQL connections, mutual TLS between pods) and credentials handed to containers in clear.
package crmrisk.encryption

import rego.v1

import data.crmrisk.lib

# lib's rules are read as data.crmrisk.lib.<rule>, its functions through the `lib` alias: regorus
# evaluates the whole crmrisk.lib document when a rule is read through the alias (~0.2 ms).

# A switch (requireEncryptedStorage, ...) is read in place as `not input.params.<area>.<name> ==
# false` (on unless explicitly false, like lib.enabled), not through a rule, and tested after the
# conditions that pick a finding where several bodies test it (ENC-005): on regorus' VM the first
# read of a rule is a call, and costs more than the test itself, and the ENC-005 bodies seldom
# fire in the same evaluation (BENCHMARKS.md, "Instructions"). The path and `not ... == false`
# are a few VM instructions where object.get(input, [...], true) != false was a builtin call,
# which costs regorus' VM about as much as a rule call.

# An array is tested non-empty as `arr[0]` and empty as `not arr[0]` rather than with count, a
# builtin call, where its items are objects or strings (never false), as the input schema makes
# claims, ingresses and their hosts and tlsHosts, services and sslmodes.

# The storage rules write the claim's and StorageClass's evidence and description out in each
# finding rather than through helper functions (lib.claim_desc, lib.claim_ref): a function call
# costs thousands of machine instructions on regorus' VM, and ENC-001 to ENC-003 fire for a good
# share of the workloads (BENCHMARKS.md).

# The storage rules (ENC-001 to ENC-003) are one body of findings that iterates
# input.storage.claims and asks storage_finding for each claim's finding: a workload without
# claims ends the loop at once, and one with claims is spared the calls of a group rule and of a
# rule listing the resolved claims, and a second body for the claims that are not resolved (on
# regorus' VM each body of findings tried, each rule call and each VM instruction cost,
# BENCHMARKS.md, "Instructions").

# ---------------------------------------------------------------------------------------------
# ENC-001: volume stored unencrypted
# ENC-002: encrypted, but with the provider's key rather than a customer-managed one
# ENC-003: a provisioner whose encryption settings crmrisk cannot read, or a claim or
#          StorageClass not found: encryption at rest cannot be verified
# ---------------------------------------------------------------------------------------------

# What is wrong with a resolved claim's StorageClass, if anything: the rule and its message format,
# whose three %s are the claim, the StorageClass's name and its provisioner. The three rules exclude
# each other (they depend on the provisioner), so one `else` chain tells which applies, and one body
# (storage_finding) makes the finding: on regorus' VM each rule body, function call and StorageClass
# parameter read costs thousands of machine instructions (BENCHMARKS.md, "Instructions"), and most
# resolved claims have one of these problems.
# Each known provisioner family has one parameter that decides its first problem: `encrypted` must
# be "true" (ENC-001 otherwise) or the customer key must be set (ENC-002 when it is ""). The first
# body looks the family and its check up in two literal objects, so a known provisioner gets its
# answer from one body instead of trying the bodies of the families before it; the unknown
# provisioners (ENC-003) follow, then the AWS families' second check (kmsKeyId), so that an unknown
# provisioner is decided by the second body (regorus' VM clears this function's whole register
# window for each body it tries). The provisioners are lib's sets (aws_ebs_provisioners, ...,
# known_provisioners) written out: on regorus' VM the first read of a rule, even a constant one, is
# a call (encryption_test checks that each provisioner of each set gets its set's finding). The AWS
# families' kmsKeyId is read with sc_value, lib.sc_param for a key given in lower case. The first
# body reads its parameter in place, as sc_value would, into an array of none or one normalized
# value (`m` alone ends the comprehension's body when min has no value: regorus' VM would go on)
# that the family's `accepted` forms list: [] stands for sc_value's "". Few claims reach the
# kmsKeyId test, while on regorus' VM the sc_value call in the first body cost every resolved claim
# a function call and a second body (BENCHMARKS.md, "Instructions"); encryption_test holds the first
# body's reading equal to lib.sc_param's.
at_rest_problem(sc) := check.problem if {
	families := {
		"ebs.csi.aws.com": "aws", "kubernetes.io/aws-ebs": "aws",
		"pd.csi.storage.gke.io": "gce", "kubernetes.io/gce-pd": "gce",
		"disk.csi.azure.com": "azure", "kubernetes.io/azure-disk": "azure",
		"rbd.csi.ceph.com": "rbd", "kubernetes.io/rbd": "rbd",
	}
	checks := {
		"aws": {"key": "encrypted", "accepted": [["true"]], "problem_if_equal": false, "problem": {
			"id": "ENC-001",
			"format": "%s is provisioned by StorageClass %s (%s) without encrypted: \"true\": EBS volumes are created unencrypted unless EBS encryption by default is on in the AWS account",
		}},
		"gce": {"key": "disk-encryption-kms-key", "accepted": [[], [""]], "problem_if_equal": true, "problem": {
			"id": "ENC-002",
			"format": "%s uses StorageClass %s (%s), encrypted with a Google-managed key because no disk-encryption-kms-key (CMEK) is set: the key cannot be rotated, audited or revoked by you",
		}},
		"rbd": {"key": "encrypted", "accepted": [["true"]], "problem_if_equal": false, "problem": {
			"id": "ENC-001",
			"format": "%s is provisioned by StorageClass %s (%s) without encrypted: \"true\": Ceph RBD images are written in clear to the Ceph cluster",
		}},
		"azure": {"key": "diskencryptionsetid", "accepted": [[], [""]], "problem_if_equal": true, "problem": {
			"id": "ENC-002",
			"format": "%s uses StorageClass %s (%s), encrypted with a platform-managed key because no diskEncryptionSetID is set: the key cannot be rotated, audited or revoked by you",
		}},
	}
	check := checks[families[sc.provisioner]]
	check # regorus' VM would go on with an undefined check and read the parameters
	norm := [trim_space(lower(m)) | m := min([v | some k, v in sc.parameters; lower(k) == check.key]); m]
	same := norm in check.accepted
	same == check.problem_if_equal
} else := {
	"id": "ENC-003",
	"format": "%s uses StorageClass %s (%s), a provisioner whose encryption settings crmrisk cannot read: verify encryption at rest by hand",
} if {
	not sc.provisioner in {
		"ebs.csi.aws.com", "kubernetes.io/aws-ebs", "pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
		"disk.csi.azure.com", "kubernetes.io/azure-disk", "rbd.csi.ceph.com", "kubernetes.io/rbd",
	}
} else := {
	"id": "ENC-002",
	"format": "%s uses StorageClass %s (%s), encrypted with the AWS-managed key aws/ebs because no kmsKeyId is set: the key cannot be rotated, audited or revoked by you",
} if {
	sc.provisioner in {"ebs.csi.aws.com", "kubernetes.io/aws-ebs"}
	sc_value(sc, "kmskeyid") == ""
}

# lib.sc_param(sc, key) for a key written in lower case, on a StorageClass of the input: the
# input schema makes parameters a required map of strings, so it reads sc.parameters without an
# object.get default and keeps each value as it is (sprintf("%v") of a string is the string), and
# takes the least value with min (undefined for none) rather than sorting them, testing the count
# and indexing. Each builtin call and VM instruction costs regorus' VM, and at_rest_problem reads
# one or two parameters for most claims (BENCHMARKS.md, "Instructions"). encryption_test checks
# it against lib.sc_param.
sc_value(sc, key) := trim_space(lower(value)) if {
	value := min([v | some k, v in sc.parameters; lower(k) == key])
	value # regorus' VM would go on with an undefined value
} else := ""

# The switch is tested after the finding: it is nearly always on.
findings contains f if {
	some c in input.storage.claims
	f := storage_finding(c)
	f # regorus' VM would go on with an undefined finding
	not input.params.encryption.requireEncryptedStorage == false
}

# A claim's storage finding, if any: ENC-001 to ENC-003 for a resolved claim, whose StorageClass
# exists so its provisioner and parameters can be read (`c.found` and `sc.found`: a claim without
# a StorageClass has storageClass null, whose .found is undefined as that of any non-object),
# else ENC-003 for a claim that is not found, has no StorageClass, or names one that does not
# exist (unresolved_finding). One `else` chain, as each claim has at most one of these findings;
# no body iterates, so regorus' VM takes the `else` (see lib.zone_spread).
# A resolved claim's finding has two forms, with lib.claim_desc and lib.claim_ref written out:
# a volumeClaimTemplate points at the workload (see lib.claim_ref), the more common form, tried
# first; a PersistentVolumeClaim of a pod volume at itself. They are two bodies of this chain
# rather than a function of the claim and its problem: on regorus' VM that call cost more than
# the registers its bodies add to this function's window (BENCHMARKS.md, "Instructions"). The
# StorageClass is read once, as `sc`, where each `c.storageClass.x` is a chained lookup.
# A resolved claim without a problem is false (no finding, as the body of findings tests `f`),
# which ends the chain there; the unresolved forms are a function of their own, so that their
# registers stay out of this function's window: regorus' VM clears the whole window for each
# body it tries.
storage_finding(c) := {
	"id": problem.id,
	"message": sprintf(problem.format, [sprintf("volumeClaimTemplate %s of %s", [c.name, data.crmrisk.lib.workload_desc]), sc.name, sc.provisioner]),
	"evidence": [data.crmrisk.lib.workload_ref, {"kind": "StorageClass", "name": sc.name}],
} if {
	c.source != "volume"
	c.found
	sc := c.storageClass
	sc.found
	problem := at_rest_problem(sc)
	problem # regorus' VM would go on with an undefined problem and build the finding
} else := {
	"id": problem.id,
	"message": sprintf(problem.format, [sprintf("PersistentVolumeClaim %s/%s", [input.workload.namespace, c.name]), sc.name, sc.provisioner]),
	"evidence": [
		{"kind": "PersistentVolumeClaim", "namespace": input.workload.namespace, "name": c.name},
		{"kind": "StorageClass", "name": sc.name},
	],
} if {
	c.source == "volume"
	c.found
	sc := c.storageClass
	sc.found
	problem := at_rest_problem(sc)
	problem # regorus' VM would go on with an undefined problem and build the finding
} else := false if {
	c.found
	c.storageClass.found
} else := unresolved_finding(c)

# An unresolved claim's finding: not found, no StorageClass (null, as the input schema has it), or
# a StorageClass that does not exist.
unresolved_finding(c) := {
	"id": "ENC-003",
	"message": sprintf("%s is used by the pod template but was not found, so its encryption cannot be verified", [lib.claim_desc(c)]),
	"evidence": [lib.claim_ref(c)],
} if {
	not c.found
} else := {
	"id": "ENC-003",
	"message": sprintf(
		"%s has no StorageClass (a pre-provisioned volume, or no default class), so its encryption cannot be verified",
		[lib.claim_desc(c)],
	),
	"evidence": [lib.claim_ref(c)],
} if {
	not is_object(c.storageClass)
} else := {
	"id": "ENC-003",
	"message": sprintf(
		"%s names StorageClass %s, which does not exist, so its encryption cannot be verified",
		[lib.claim_desc(c), c.storageClass.name],
	),
	"evidence": [lib.claim_ref(c), {"kind": "StorageClass", "name": c.storageClass.name}],
} if {
	not c.storageClass.found
}

# ---------------------------------------------------------------------------------------------
# ENC-004: Ingress serving the workload over plain HTTP
# ---------------------------------------------------------------------------------------------

# One body of findings iterates the Ingresses and asks ingress_finding for each one's finding: a
# workload without Ingresses ends the loop at once, and one with Ingresses is spared the call of
# a group rule and its bodies (on regorus' VM each body of findings tried, each rule call and
# each VM instruction cost, BENCHMARKS.md, "Instructions"). The switch is tested after the
# finding: it is nearly always on.
findings contains f if {
	some ing in input.ingresses
	f := ingress_finding(ing)
	f # regorus' VM would go on with an undefined finding
	not input.params.encryption.requireIngressTLS == false
}

# A TLS host covers a rule host exactly or as a one-label wildcard (*.example.com); "*" stands
# for a spec.tls entry without hosts, which applies to every host of the Ingress. The exact
# match, which covers most hosts, is tested in place by ingress_finding before this is called
# (a function call costs regorus' VM thousands of machine instructions); one definition with an
# `else` rather than two definitions, and the body that iterates last (see lib.zone_spread).
tls_covers(tls_hosts, host) if host in tls_hosts
else if "*" in tls_hosts
else if {
	some t in tls_hosts
	startswith(t, "*.")
	glob.match(t, ["."], host)
}

# An Ingress's finding, if any: the hosts of its rules that no TLS host covers, or, for an
# Ingress without rule hosts (a default backend or a catch-all rule), no TLS section at all. The
# Ingress's name and evidence are written out rather than built by lib.qualified and lib.ref: a
# function call costs regorus' VM thousands of machine instructions (BENCHMARKS.md). The input
# schema makes hosts and tlsHosts arrays of strings, tested non-empty as `arr[0]`.
ingress_finding(ing) := {
	"id": "ENC-004",
	"message": sprintf(
		"Ingress %s/%s routes %s to %s without TLS: traffic is plain HTTP",
		[input.workload.namespace, ing.name, concat(", ", plain), data.crmrisk.lib.workload_desc],
	),
	"evidence": [{"kind": "Ingress", "namespace": input.workload.namespace, "name": ing.name}, data.crmrisk.lib.workload_ref],
} if {
	ing.hosts[0]
	plain := sort([h |
		some h in ing.hosts
		not h in ing.tlsHosts
		not tls_covers(ing.tlsHosts, h)
	])
	plain[0]
} else := {
	"id": "ENC-004",
	"message": sprintf(
		"Ingress %s/%s routes every host to %s and has no TLS section: traffic is plain HTTP",
		[input.workload.namespace, ing.name, data.crmrisk.lib.workload_desc],
	),
	"evidence": [{"kind": "Ingress", "namespace": input.workload.namespace, "name": ing.name}, data.crmrisk.lib.workload_ref],
} if {
	not ing.hosts[0]
	not ing.tlsHosts[0]
}

# ---------------------------------------------------------------------------------------------
# ENC-005: PostgreSQL connection without guaranteed TLS
# ---------------------------------------------------------------------------------------------

# Pods in a mesh may get the connection encrypted by the sidecars if the database is meshed too.
db_tls_likelihood := 2 if mtls
else := 3

# The context builder reads the containers' literal strings (policies/README.md, `containers`):
# `pgsslmode` is PGSSLMODE as libpq reads it, `connections` the strings that hold a connection
# (never the string itself: it may hold a password), `literalCredentials` the variables whose
# name says credential and whose value is written in the manifest. The rules judge those facts.

# Where a connection string is, for messages.
where(conn) := sprintf("env %s", [conn.env]) if is_string(conn.env)
else := "args"

# The sslmodes that guarantee TLS are lib.tls_sslmodes written out (see at_rest_problem). The
# finding is built by a function rather than in the body, which would be the largest of findings:
# regorus' VM sets up as many registers as that body needs for each of findings' bodies it tries
# (see mesh_finding).
findings contains f if {
	some c in input.containers
	some mode in c.pgsslmode.values
	not mode in {"require", "verify-ca", "verify-full"}
	not input.params.encryption.requireDatabaseTLS == false
	f := pgsslmode_finding(c, mode)
}

pgsslmode_finding(c, mode) := {
	"id": "ENC-005",
	"message": sprintf(
		"container %s of %s sets PGSSLMODE=%s: PostgreSQL connections may be unencrypted (only require, verify-ca and verify-full guarantee TLS)",
		[c.name, data.crmrisk.lib.workload_desc, mode],
	),
	"evidence": [data.crmrisk.lib.workload_ref],
	"likelihood": db_tls_likelihood,
}

# The connection strings' findings (two ENC-005 rules and the ENC-006 rule for a password in a
# URL): one body of findings iterates the containers' connections and asks connection_findings
# for each one's findings. Many workloads have no connection and end the loop at once; one with
# connections is spared a group rule whose bodies each iterate the containers and connections
# again (on regorus' VM each rule body tried and each call cost thousands of machine
# instructions, BENCHMARKS.md, "Instructions").
findings contains f if {
	some c in input.containers
	some conn in c.connections
	some f in connection_findings(c, conn)
}

# A connection's findings, one set comprehension per rule: ENC-005 for each sslmode it names that
# does not guarantee TLS (lib.tls_sslmodes written out); ENC-005 for a PostgreSQL connection that
# names none, which gets libpq's default, prefer, unless PGSSLMODE is set (JDBC's ssl=true means
# verify-full); ENC-006 for a password written into a URL. On regorus' VM a comprehension costs
# less than a rule body, and the sets' union is two builtin calls.
connection_findings(c, conn) := ({f |
	some mode in conn.sslmodes
	not mode in {"require", "verify-ca", "verify-full"}
	not input.params.encryption.requireDatabaseTLS == false
	f := {
		"id": "ENC-005",
		"message": sprintf(
			"container %s of %s connects to PostgreSQL with sslmode=%s (%s): only require, verify-ca and verify-full guarantee TLS",
			[c.name, data.crmrisk.lib.workload_desc, mode, where(conn)],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
		"likelihood": db_tls_likelihood,
	}
} | {f |
	not conn.sslmodes[0]
	conn.postgres
	not conn.jdbcSslTrue
	not c.pgsslmode.set
	not input.params.encryption.requireDatabaseTLS == false
	f := {
		"id": "ENC-005",
		"message": sprintf(
			"container %s of %s connects to PostgreSQL (%s) without sslmode or PGSSLMODE: the default, prefer, silently falls back to plaintext",
			[c.name, data.crmrisk.lib.workload_desc, where(conn)],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
		"likelihood": db_tls_likelihood,
	}
}) | {f |
	conn.urlPassword
	f := {
		"id": "ENC-006",
		"message": sprintf(
			"container %s of %s has a password written into a URL (%s) instead of taking it from a Secret",
			[c.name, data.crmrisk.lib.workload_desc, where(conn)],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# ENC-006: credentials in clear in the pod template
# ---------------------------------------------------------------------------------------------

findings contains f if {
	some c in input.containers
	some name in c.literalCredentials
	f := {
		"id": "ENC-006",
		"message": sprintf(
			"container %s of %s sets %s to a literal value instead of a secretKeyRef: anyone who can read the %s can read the credential",
			[c.name, data.crmrisk.lib.workload_desc, name, input.workload.kind],
		),
		"evidence": [data.crmrisk.lib.workload_ref],
	}
}

# ---------------------------------------------------------------------------------------------
# ENC-007: confidential workload without mutual TLS
# ---------------------------------------------------------------------------------------------

# Pod-to-pod traffic is encrypted and authenticated: Istio sidecar with STRICT peer
# authentication (unset means PERMISSIVE, which still accepts plaintext), or Linkerd.
mtls if {
	input.mesh.istio.injected
	input.mesh.istio.peerAuthenticationMode == "STRICT"
}

mtls if input.mesh.linkerd.injected

# ENC-007 fires for a confidential workload behind a Service whose pods lack mutual TLS (mtls):
# the body of findings looks the mesh state that lacks it up by Istio injected, then
# PeerAuthentication mode (the schema makes the mode required, one of STRICT, PERMISSIVE, DISABLE
# or null; an injected sidecar with STRICT is mtls and has no entry) and tests Linkerd itself,
# rather than testing `not mtls` and reading a mesh_state rule: on regorus' VM the first read of a
# rule is a call (BENCHMARKS.md, "Instructions"), and these were read for every confidential
# workload behind a Service. A workload with mutual TLS thus fails in the body, before any call.
# The finding is built by a function of the state rather than in the body of findings: regorus'
# VM sets up as many registers as the largest body of findings needs for each of its bodies it
# tries.
#
# Most workloads are behind one Service: its name and evidence are read in place, where several
# Services take two comprehensions, a sort, a concat and an array.concat (regorus' VM charges
# each comprehension and builtin call about as much as a rule call). encryption_test checks both
# forms.
mesh_finding(state) := {
	"id": "ENC-007",
	"message": sprintf(
		"%s holds %s data and is reached through Service %s, but %s: pod-to-pod traffic is not mutually authenticated and encrypted",
		[data.crmrisk.lib.workload_desc, input.classification.dataClassification, s.name, state],
	),
	"evidence": [data.crmrisk.lib.workload_ref, {"kind": "Service", "namespace": input.workload.namespace, "name": s.name}],
} if {
	not input.services[1]
	s := input.services[0]
} else := {
	"id": "ENC-007",
	"message": sprintf(
		"%s holds %s data and is reached through Service %s, but %s: pod-to-pod traffic is not mutually authenticated and encrypted",
		[data.crmrisk.lib.workload_desc, input.classification.dataClassification, concat(", ", sort([s.name | some s in input.services])), state],
	),
	"evidence": array.concat(
		[data.crmrisk.lib.workload_ref],
		[{"kind": "Service", "namespace": input.workload.namespace, "name": s.name} | some s in input.services],
	),
}

# The classification is tested in place (lib.sensitive_data written out): ENC-007 is its only
# reader, and on regorus' VM the first read of a rule is a call (BENCHMARKS.md, "Instructions").
findings contains f if {
	input.classification.dataClassification in {"confidential", "restricted"}
	input.services[0]
	not input.mesh.linkerd.injected
	state := {
		false: {
			null: "its pods are in neither an Istio nor a Linkerd mesh",
			"STRICT": "its pods are in neither an Istio nor a Linkerd mesh",
			"PERMISSIVE": "its pods are in neither an Istio nor a Linkerd mesh",
			"DISABLE": "its pods are in neither an Istio nor a Linkerd mesh",
		},
		true: {
			null: "its Istio sidecar accepts plaintext (no PeerAuthentication, so PERMISSIVE)",
			"PERMISSIVE": "its Istio sidecar accepts plaintext (PeerAuthentication mode PERMISSIVE)",
			"DISABLE": "its Istio sidecar accepts plaintext (PeerAuthentication mode DISABLE)",
		},
	}[input.mesh.istio.injected][input.mesh.istio.peerAuthenticationMode]
	state # regorus' VM would go on with an undefined state
	f := mesh_finding(state)
}
