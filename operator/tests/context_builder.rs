//! End-to-end runs of the context builder over YAML fixtures (`tests/fixtures/context/`), and a
//! check of the produced documents against `policies/input.schema.json`.
//!
//! No JSON Schema validator is in the dependency tree, so `schema` below implements the handful of
//! keywords the schema uses (type, enum, properties, required, additionalProperties, items,
//! anyOf, $ref, minimum) and refuses any other keyword, so the schema cannot drift into syntax
//! this check silently ignores. It also checks the reverse direction: every property the schema
//! describes occurs in at least one fixture document.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crmrisk::context::{self, BackupTools, ObjectSet, ObjectSource, Workload};
use crmrisk::model::WorkloadKind;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::core::DynamicObject;
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "../benches/support/gen.rs"]
mod generator;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/context").join(name)
}

fn yaml_values(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("fixture YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn load(name: &str) -> ObjectSet {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture exists");
    ObjectSet::from_values(yaml_values(&text)).expect("fixture objects are well-formed")
}

fn workload<'a>(set: &'a ObjectSet, kind: WorkloadKind, name: &str) -> &'a Arc<Workload> {
    set.workloads().iter().find(|w| w.kind == kind && w.name() == name).expect("workload in fixture")
}

fn document(set: &ObjectSet, kind: WorkloadKind, name: &str) -> Value {
    serde_json::to_value(context::build(workload(set, kind, name), set)).expect("context serializes")
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().expect("a list").iter().map(|v| v["name"].as_str().expect("a name")).collect()
}

#[test]
fn database_statefulset() {
    let set = load("crm.yaml");
    let doc = document(&set, WorkloadKind::StatefulSet, "crm-db");

    assert_eq!(doc["workload"]["apiVersion"], "apps/v1");
    assert_eq!(doc["workload"]["kind"], "StatefulSet");
    assert_eq!(doc["workload"]["replicas"], 1);
    assert_eq!(doc["workload"]["isDatabase"], true);
    assert_eq!(doc["workload"]["annotations"], json!({"team": "data"}), "last-applied-configuration is dropped");
    assert_eq!(doc["workload"]["podSpec"]["containers"][0]["image"], "postgres:16");
    assert_eq!(doc["namespace"]["found"], true);

    assert_eq!(
        doc["classification"],
        json!({"dataClassification": "restricted", "businessImpact": "high", "source": "workload"})
    );
    assert_eq!(
        doc["serviceAccount"],
        json!({"name": "default", "found": false, "isDefault": true, "automountToken": true})
    );

    // Bound through the namespace's ServiceAccount group, to an aggregated ClusterRole.
    let bindings = &doc["rbac"]["bindings"];
    assert_eq!(names(bindings), ["crm-api-aggregate"]);
    assert_eq!(bindings[0]["clusterWide"], true);
    assert_eq!(
        bindings[0]["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"],
                "resourceNames": [], "nonResourceURLs": []}])
    );

    assert_eq!(
        doc["storage"]["claims"],
        json!([
            {"name": "crm-db-backup", "source": "volume", "found": true, "storageClassName": "gp2",
             "storageClass": {"name": "gp2", "found": true, "isDefault": false,
                              "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2"}}},
            {"name": "data", "source": "volumeClaimTemplate", "found": true, "storageClassName": "gp3-encrypted",
             "storageClass": {"name": "gp3-encrypted", "found": true, "isDefault": true,
                              "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3", "encrypted": "true"}}}
        ])
    );
    assert_eq!(doc["secrets"], json!(["crm-db-credentials"]));
    assert_eq!(
        doc["services"],
        json!([{"name": "crm-db", "type": "ClusterIP", "ports": [{"name": "pg", "port": 5432, "appProtocol": "postgresql"}]}])
    );
    assert_eq!(doc["ingresses"], json!([]));
    assert_eq!(
        doc["networkPolicies"],
        json!([{"name": "db-egress", "policyTypes": ["Ingress", "Egress"]}, {"name": "deny-all", "policyTypes": ["Ingress"]}])
    );
    assert_eq!(doc["podDisruptionBudgets"], json!([{"name": "crm-db", "minAvailable": 1, "maxUnavailable": null}]));
    assert_eq!(
        doc["mesh"],
        json!({"istio": {"injected": true, "peerAuthenticationMode": "PERMISSIVE"}, "linkerd": {"injected": false}})
    );

    assert_eq!(doc["backup"]["tools"], json!({"velero": true, "cnpg": true}));
    assert_eq!(
        doc["backup"]["velero"]["schedules"],
        json!([{
            "name": "daily", "namespace": "velero", "schedule": "0 2 * * *", "paused": false,
            "intervalHours": 24, "ttl": "720h0m0s", "ttlHours": 720, "snapshotVolumes": true,
            "includedNamespaces": ["crm"], "excludedNamespaces": [],
            "storageLocation": {"name": "default", "found": true, "provider": "aws", "bucket": "crm-backups",
                                "region": "eu-west-1", "accessMode": "ReadWrite"}
        }])
    );
    assert_eq!(doc["backup"]["cnpg"]["clusters"], json!([]));
    assert_eq!(doc["warnings"], json!([]));
}

#[test]
fn api_deployment() {
    let set = load("crm.yaml");
    let doc = document(&set, WorkloadKind::Deployment, "crm-api");

    assert_eq!(doc["workload"]["replicas"], 3);
    assert_eq!(doc["workload"]["isDatabase"], false);
    assert_eq!(
        doc["classification"],
        json!({"dataClassification": "confidential", "businessImpact": "high", "source": "namespace"})
    );
    assert_eq!(
        doc["serviceAccount"],
        json!({"name": "crm-api", "found": true, "isDefault": false, "automountToken": false})
    );

    let containers = doc["containers"].as_array().unwrap();
    assert_eq!(names(&doc["containers"]), ["migrate", "api"]);
    assert_eq!(containers[0]["init"], true);
    assert_eq!(
        containers[0]["args"],
        json!(["migrate", "--database", "postgres://crm-pg-rw.crm.svc:5432/app?sslmode=require"])
    );
    assert_eq!(containers[1]["readinessProbe"], true);
    assert_eq!(containers[1]["livenessProbe"], false);
    assert_eq!(
        containers[1]["env"],
        json!([
            {"name": "PGSSLMODE", "value": "require", "fromSecret": null, "fromConfigMap": null},
            {"name": "PGHOST", "value": "crm-pg-rw", "fromSecret": null, "fromConfigMap": null},
            {"name": "DB_PASSWORD", "value": null, "fromSecret": {"name": "crm-pg-app", "key": "password"}, "fromConfigMap": null},
            {"name": "FEATURE_FLAGS", "value": null, "fromSecret": null, "fromConfigMap": {"name": "crm-config", "key": "flags"}}
        ])
    );

    let bindings = &doc["rbac"]["bindings"];
    assert_eq!(names(bindings), ["crm-api-config", "crm-admin", "crm-api-aggregate"]);
    assert_eq!(bindings[0]["kind"], "RoleBinding");
    assert_eq!(bindings[0]["namespace"], "crm");
    assert_eq!(bindings[0]["roleFound"], true);
    assert_eq!(bindings[1]["roleRef"], json!({"kind": "ClusterRole", "name": "cluster-admin"}));
    assert_eq!(bindings[1]["roleFound"], false, "cluster-admin is not in the fixture");
    assert_eq!(bindings[1]["rules"], json!([]));

    assert_eq!(doc["storage"]["claims"], json!([]));
    assert_eq!(doc["secrets"], json!(["crm-api-keys", "crm-api-tls", "crm-pg-app", "regcred"]));
    assert_eq!(names(&doc["services"]), ["crm-api"]);
    assert_eq!(doc["services"][0]["type"], "LoadBalancer");
    assert_eq!(
        doc["ingresses"],
        json!([{"name": "crm", "className": "nginx", "hosts": ["api.crm.example.com", "crm.example.com"],
                "tlsHosts": ["crm.example.com"], "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "true"}}])
    );
    assert_eq!(names(&doc["networkPolicies"]), ["deny-all"]);
    assert_eq!(doc["podDisruptionBudgets"], json!([]));
    assert_eq!(
        doc["mesh"],
        json!({"istio": {"injected": false, "peerAuthenticationMode": "STRICT"}, "linkerd": {"injected": true}}),
        "the pod opts out of Istio injection; the mesh-wide STRICT policy applies"
    );

    let schedules = &doc["backup"]["velero"]["schedules"];
    assert_eq!(
        names(schedules),
        ["daily", "weekly-labelled"],
        "excluded and other-namespace schedules do not cover it"
    );
    assert_eq!(schedules[1]["intervalHours"], 168);
    assert_eq!(schedules[1]["ttl"], Value::Null);
    assert_eq!(schedules[1]["ttlHours"], 720);
    assert_eq!(
        schedules[1]["storageLocation"],
        json!({"name": "offsite", "found": false, "provider": null, "bucket": null, "region": null, "accessMode": null})
    );

    assert_eq!(
        doc["backup"]["cnpg"]["clusters"],
        json!([{
            "name": "crm-pg", "backupConfigured": true, "method": "barmanObjectStore",
            "destinationPath": "s3://crm-pg-backups/", "retentionPolicy": "30d", "retentionDays": 30,
            "scheduledBackups": [{"name": "nightly", "schedule": "0 0 2 * * *", "suspend": false,
                                  "intervalHours": 24, "method": "barmanObjectStore"}]
        }])
    );
}

#[test]
fn cron_job_using_a_plugin_backed_cluster() {
    let set = load("crm.yaml");
    let doc = document(&set, WorkloadKind::CronJob, "analytics-export");
    assert_eq!(doc["workload"]["apiVersion"], "batch/v1");
    assert_eq!(doc["workload"]["replicas"], Value::Null);
    assert_eq!(doc["serviceAccount"]["automountToken"], false);
    assert_eq!(names(&doc["backup"]["cnpg"]["clusters"]), ["analytics-pg"]);
    let cluster = &doc["backup"]["cnpg"]["clusters"][0];
    assert_eq!(cluster["method"], "plugin");
    assert_eq!(cluster["backupConfigured"], true);
    assert_eq!(cluster["destinationPath"], Value::Null);
    assert_eq!(cluster["retentionDays"], Value::Null);
    assert_eq!(cluster["scheduledBackups"][0]["intervalHours"], 168);
    assert_eq!(cluster["scheduledBackups"][0]["method"], "plugin");
}

#[test]
fn lone_deployment_gets_the_full_shape_with_misses() {
    let set = load("minimal.yaml");
    let doc = document(&set, WorkloadKind::Deployment, "web");
    let expected = json!({
        "workload": {
            "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web",
            "labels": {}, "annotations": {}, "replicas": 1,
            "podLabels": {"app": "web"}, "podAnnotations": {},
            "podSpec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            "isDatabase": false
        },
        "namespace": {"name": "default", "found": false, "labels": {}, "annotations": {}},
        "classification": {"dataClassification": null, "businessImpact": null, "source": null},
        "containers": [{"name": "web", "image": "nginx:1.27", "init": false, "readinessProbe": false,
                        "livenessProbe": false, "env": [], "args": [],
                        "pgsslmode": {"set": false, "values": []}, "connections": [], "literalCredentials": []}],
        "serviceAccount": {"name": "default", "found": false, "isDefault": true, "automountToken": true},
        "rbac": {"bindings": []},
        "storage": {"claims": []},
        "secrets": [],
        "services": [],
        "ingresses": [],
        "networkPolicies": [],
        "podDisruptionBudgets": [],
        "mesh": {"istio": {"injected": false, "peerAuthenticationMode": null}, "linkerd": {"injected": false}},
        "backup": {"tools": {"velero": false, "cnpg": false}, "velero": {"schedules": []}, "cnpg": {"clusters": []}},
        "warnings": []
    });
    assert_eq!(doc, expected);
}

#[test]
fn secret_contents_never_reach_documents() {
    let set = load("crm.yaml");
    assert_eq!(set.ignored().get("Secret"), Some(&1));
    for w in set.workloads() {
        let text = serde_json::to_string(&context::build(w, &set)).unwrap();
        assert!(!text.contains("do-not-leak-me"), "{}", w.reference());
    }
}

#[test]
fn malformed_manifests_are_reported_by_object() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n\
                apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: broken, namespace: crm}\n\
                spec: {replicas: [1], template: {spec: {containers: []}}}\n";
    let err = ObjectSet::from_values(yaml_values(text)).unwrap_err().to_string();
    assert!(err.contains("StatefulSet") && err.contains("crm/broken"), "{err}");
}

#[test]
fn unreadable_values_become_warnings_not_failures() {
    let mut set = load("minimal.yaml");
    for v in [
        json!({"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "typo", "namespace": "velero"},
               "spec": {"schedule": "0 25 * * *", "template": {"ttl": "30 days"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default",
               "labels": {"crmrisk.io/business-impact": "huge"}}}),
    ] {
        set.insert_value(v).unwrap();
    }
    let doc = document(&set, WorkloadKind::Deployment, "web");
    let schedule = &doc["backup"]["velero"]["schedules"][0];
    assert_eq!(schedule["intervalHours"], Value::Null);
    assert_eq!(schedule["ttlHours"], Value::Null);
    assert_eq!(doc["classification"]["businessImpact"], Value::Null);
    let warnings: Vec<&str> = doc["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("huge")));
    assert!(warnings.iter().any(|w| w.contains("0 25 * * *")));
    assert!(warnings.iter().any(|w| w.contains("30 days")));
}

/// An [`ObjectSource`] that counts the calls the builder makes, to check that the work per
/// workload does not grow with the size of the cluster.
struct Counting<'a> {
    inner: &'a ObjectSet,
    calls: AtomicUsize,
    cluster_roles_calls: AtomicUsize,
}

impl Counting<'_> {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl ObjectSource for Counting<'_> {
    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.tick();
        self.inner.namespace(name)
    }
    fn service_account(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccount>> {
        self.tick();
        self.inner.service_account(namespace, name)
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>> {
        self.tick();
        self.inner.role_bindings(namespace)
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>> {
        self.tick();
        self.inner.cluster_role_bindings()
    }
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>> {
        self.tick();
        self.inner.role(namespace, name)
    }
    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>> {
        self.tick();
        self.inner.cluster_role(name)
    }
    fn cluster_roles(&self) -> Vec<Arc<ClusterRole>> {
        self.tick();
        self.cluster_roles_calls.fetch_add(1, Ordering::Relaxed);
        self.inner.cluster_roles()
    }
    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.tick();
        self.inner.pvc(namespace, name)
    }
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.tick();
        self.inner.storage_class(name)
    }
    fn storage_classes(&self) -> Vec<Arc<StorageClass>> {
        self.tick();
        self.inner.storage_classes()
    }
    fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.tick();
        self.inner.services(namespace)
    }
    fn ingresses(&self, namespace: &str) -> Vec<Arc<Ingress>> {
        self.tick();
        self.inner.ingresses(namespace)
    }
    fn network_policies(&self, namespace: &str) -> Vec<Arc<NetworkPolicy>> {
        self.tick();
        self.inner.network_policies(namespace)
    }
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        self.tick();
        self.inner.pod_disruption_budgets(namespace)
    }
    fn velero_schedules(&self) -> Vec<Arc<DynamicObject>> {
        self.tick();
        self.inner.velero_schedules()
    }
    fn velero_backup_storage_location(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.tick();
        self.inner.velero_backup_storage_location(namespace, name)
    }
    fn cnpg_clusters(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.tick();
        self.inner.cnpg_clusters(namespace)
    }
    fn cnpg_scheduled_backups(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.tick();
        self.inner.cnpg_scheduled_backups(namespace)
    }
    fn istio_peer_authentications(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.tick();
        self.inner.istio_peer_authentications(namespace)
    }
    fn backup_tools(&self) -> BackupTools {
        self.tick();
        self.inner.backup_tools()
    }
}

#[test]
fn lookups_per_workload_do_not_grow_with_the_cluster() {
    let mut per_workload = Vec::new();
    for namespaces in [5, 50] {
        let mut set = ObjectSet::new();
        for n in 0..namespaces {
            let ns = format!("ns-{n}");
            for i in 0..10 {
                let name = format!("app-{i}");
                set.insert_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "c", "image": "app"}],
                                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": name}}]}}}}))
                    .unwrap();
                set.insert_value(json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": ns}, "spec": {"selector": {"app": name}}}))
                    .unwrap();
                set.insert_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": ns}, "spec": {}}))
                    .unwrap();
            }
        }
        let counting = Counting { inner: &set, calls: AtomicUsize::new(0), cluster_roles_calls: AtomicUsize::new(0) };
        for w in set.workloads() {
            let doc = context::build(w, &counting);
            assert_eq!(doc.services.len(), 1, "only its own Service, found through the namespace index");
        }
        assert_eq!(counting.cluster_roles_calls.load(Ordering::Relaxed), 0, "no aggregated roles, no full scan");
        per_workload.push(counting.calls.load(Ordering::Relaxed) / set.workloads().len());
    }
    assert_eq!(per_workload[0], per_workload[1], "lookups per workload: {per_workload:?}");
}

/// ClusterRoleBindings and Velero Schedules come from per-ServiceAccount and per-namespace
/// indexes; the documents must be exactly those of a full scan (`Counting` does not override
/// the indexed lookups, so it scans every binding and Schedule), on a generated cluster plus
/// bindings and Schedules of every scope: groups, wildcards, exclusions, labels, no template.
#[test]
fn indexed_cluster_lists_give_the_documents_of_full_scans() {
    let mut set = ObjectSet::from_values(generator::generate(400, generator::SEED)).expect("generated objects");
    let crb = |name: &str, subjects: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})
    };
    let schedule = |name: &str, spec: Value| {
        json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": name, "namespace": "velero"}, "spec": spec})
    };
    let extra = [
        crb("ns-group", json!([{"kind": "Group", "name": "system:serviceaccounts:crm-0003"}])),
        crb("all-accounts", json!([{"kind": "Group", "name": "system:serviceaccounts"}])),
        crb("as-user", json!([{"kind": "User", "name": "system:serviceaccount:crm-0001:default"}])),
        crb("no-namespace", json!([{"kind": "ServiceAccount", "name": "default"}])),
        schedule("glob", json!({"schedule": "0 1 * * *", "template": {"includedNamespaces": ["crm-000*"]}})),
        schedule("all-but", json!({"schedule": "0 1 * * *", "template": {"excludedNamespaces": ["crm-0002"]}})),
        schedule(
            "by-label",
            json!({"schedule": "0 1 * * *",
            "template": {"includedNamespaces": ["crm-0004"], "labelSelector": {"matchLabels": {"app": "x"}}}}),
        ),
        schedule(
            "mixed",
            json!({"schedule": "0 1 * * *", "template": {"includedNamespaces": ["crm-0006", "crm-01?0"]}}),
        ),
        schedule("no-template", json!({"schedule": "0 1 * * *"})),
    ];
    for v in extra {
        set.insert_value(v).expect("well-formed");
    }
    let full_scan = Counting { inner: &set, calls: AtomicUsize::new(0), cluster_roles_calls: AtomicUsize::new(0) };
    let (mut bindings, mut schedules) = (0, 0);
    for w in set.workloads() {
        let indexed = context::build(w, &set);
        let scanned = context::build(w, &full_scan);
        assert!(
            indexed.rbac == scanned.rbac && indexed.backup == scanned.backup && indexed == scanned,
            "{}: the indexed document differs from the full scan's\nrbac: {:?}\nvs    {:?}\nbackup: {:?}\nvs      {:?}",
            w.reference(),
            indexed.rbac.bindings.iter().map(|b| &b.name).collect::<Vec<_>>(),
            scanned.rbac.bindings.iter().map(|b| &b.name).collect::<Vec<_>>(),
            indexed.backup.velero.schedules.iter().map(|s| &s.name).collect::<Vec<_>>(),
            scanned.backup.velero.schedules.iter().map(|s| &s.name).collect::<Vec<_>>(),
        );
        bindings += indexed.rbac.bindings.iter().filter(|b| b.cluster_wide).count();
        schedules += indexed.backup.velero.schedules.len();
    }
    assert!(bindings > 400 && schedules > 400, "{bindings} cluster bindings, {schedules} schedules found");
}

// ---- schema ----------------------------------------------------------------------------------

fn schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/input.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema is JSON")
}

/// The `params` example from policies/README.md; the engine fills in the real values.
fn example_params() -> Value {
    json!({
        "encryption": {"requireEncryptedStorage": true, "requireIngressTLS": true, "requireDatabaseTLS": true},
        "backups": {"maxIntervalHours": 24, "minRetentionDays": 7, "requireOffsite": true},
        "rbac": {"forbidClusterAdmin": true, "forbidWildcards": true, "forbidSecretReadAll": true, "forbidTokenAutomount": true},
        "disasterRecovery": {"minReplicas": 2, "requirePodDisruptionBudget": true, "requireZoneSpread": true}
    })
}

const KNOWN_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "minimum",
];

struct Validator<'a> {
    root: &'a Value,
    errors: Vec<String>,
    /// Schema locations (`<pointer>/properties/<key>`) some instance key was checked against.
    used: BTreeSet<String>,
}

impl<'a> Validator<'a> {
    fn resolve(&self, reference: &str) -> (String, &'a Value) {
        let pointer = reference.strip_prefix('#').expect("local $ref");
        let root: &'a Value = self.root;
        (pointer.to_string(), root.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}")))
    }

    /// Validate without recording errors or coverage (for `anyOf` branches).
    fn accepts(&mut self, schema_at: &str, schema: &Value, value: &Value) -> bool {
        let (errors, used) = (std::mem::take(&mut self.errors), std::mem::take(&mut self.used));
        self.check(schema_at, schema, value, "");
        let ok = self.errors.is_empty();
        let branch_used = std::mem::replace(&mut self.used, used);
        self.errors = errors;
        if ok {
            self.used.extend(branch_used);
        }
        ok
    }

    fn check(&mut self, at: &str, schema: &Value, value: &Value, path: &str) {
        let Some(schema_obj) = schema.as_object() else {
            self.errors.push(format!("{at}: schema is not an object"));
            return;
        };
        for key in schema_obj.keys() {
            assert!(KNOWN_KEYWORDS.contains(&key.as_str()), "{at}: keyword {key} is not checked by this test");
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let (pointer, target) = self.resolve(reference);
            self.check(&pointer, target, value, path);
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => panic!("{at}: bad type"),
            };
            let actual_ok = types.iter().any(|t| match *t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                "number" => value.is_number(),
                "integer" => value.is_i64() || value.is_u64(),
                other => panic!("{at}: unknown type {other}"),
            });
            if !actual_ok {
                self.errors.push(format!("{path}: {value} is not of type {types:?}"));
                return;
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            self.errors.push(format!("{path}: {value} not in {options:?}"));
        }
        if let (Some(min), Some(v)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64())
            && v < min
        {
            self.errors.push(format!("{path}: {v} < {min}"));
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            let ok = branches.iter().enumerate().any(|(i, b)| self.accepts(&format!("{at}/anyOf/{i}"), b, value));
            if !ok {
                self.errors.push(format!("{path}: {value} matches no anyOf branch"));
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.check(&format!("{at}/items"), items, item, &format!("{path}/{i}"));
            }
        }
        if let Some(map) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let key = required.as_str().expect("required names are strings");
                if !map.contains_key(key) {
                    self.errors.push(format!("{path}: missing required {key}"));
                }
            }
            for (key, child) in map {
                let child_path = format!("{path}/{key}");
                if let Some(prop) = properties.and_then(|p| p.get(key)) {
                    let prop_at = format!("{at}/properties/{key}");
                    self.used.insert(prop_at.clone());
                    self.check(&prop_at, prop, child, &child_path);
                } else {
                    match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            self.errors.push(format!("{child_path}: not described in the schema"))
                        }
                        Some(extra @ Value::Object(_)) => {
                            self.check(&format!("{at}/additionalProperties"), extra, child, &child_path)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Every `properties/<key>` location in the schema, as JSON pointers.
fn all_property_locations(at: &str, schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            for (key, child) in map {
                let child_at = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                if key == "properties"
                    && let Some(props) = child.as_object()
                {
                    for (name, prop) in props {
                        let prop_at = format!("{child_at}/{name}");
                        out.insert(prop_at.clone());
                        all_property_locations(&prop_at, prop, out);
                    }
                } else if key != "enum" {
                    all_property_locations(&child_at, child, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                all_property_locations(&format!("{at}/{i}"), item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn documents_match_the_input_schema_both_ways() {
    let schema = schema();
    let mut validator = Validator { root: &schema, errors: Vec::new(), used: BTreeSet::new() };
    let mut documents = 0;
    for fixture in ["crm.yaml", "minimal.yaml"] {
        let set = load(fixture);
        for w in set.workloads() {
            let mut doc = serde_json::to_value(context::build(w, &set)).unwrap();
            doc["params"] = example_params();
            validator.check("", &schema, &doc, &format!("[{}]", w.reference()));
            documents += 1;
        }
    }
    assert!(documents >= 4);
    assert!(validator.errors.is_empty(), "schema violations:\n{}", validator.errors.join("\n"));

    let mut described = BTreeSet::new();
    all_property_locations("", &schema, &mut described);
    let unused: Vec<_> = described.difference(&validator.used).collect();
    assert!(unused.is_empty(), "described in the schema but absent from every fixture document: {unused:#?}");
}

#[test]
fn the_schema_validator_catches_drift() {
    let schema = schema();
    let set = load("minimal.yaml");
    let mut doc = serde_json::to_value(context::build(&set.workloads()[0], &set)).unwrap();
    doc["params"] = example_params();
    doc["surprise"] = json!(1);
    doc["mesh"]["istio"]["peerAuthenticationMode"] = json!("MAYBE");
    doc["storage"]["claims"] = json!([{"name": "x", "source": "volume", "found": true, "storageClassName": null}]);
    let mut validator = Validator { root: &schema, errors: Vec::new(), used: BTreeSet::new() };
    validator.check("", &schema, &doc, "");
    let errors = validator.errors.join("\n");
    assert!(errors.contains("/surprise"), "{errors}");
    assert!(errors.contains("MAYBE"), "{errors}");
    assert!(errors.contains("missing required storageClass"), "{errors}");
}
