//! The builder's only view of the cluster ([`ObjectSource`]) and an in-memory implementation of
//! it over loose objects ([`ObjectSet`]), used by `crmrisk scan` and by tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::backup::{
    CnpgClusterSpec, PeerAuthenticationSpec, ScheduledBackupSpec, StorageLocationSpec, VeleroScheduleSpec, read_spec,
};
use super::error::{ContextError, display_name};
use super::reach::Reach;
use super::workload::Workload;
use crate::model::WorkloadRef;

/// Which optional backup tools are installed (their CRDs exist). Rules need to tell "Velero is
/// not installed" from "Velero is installed but nothing covers this workload".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupTools {
    pub velero: bool,
    pub cnpg: bool,
}

/// Everything the context builder may ask about the cluster.
///
/// Kept narrow on purpose: the operator implements it over its watch caches, so each method must
/// be cheap — namespaced lookups go through a per-namespace index, and the cluster-wide lists
/// (ClusterRoleBindings, ClusterRoles, StorageClasses, Velero Schedules) are small in practice.
/// Lists should come back in a stable order (by name) so that documents, and therefore reports,
/// do not churn.
///
/// Custom resources that `k8s-openapi` lacks come back as [`DynamicObject`]s; the builder reads
/// only the fields it needs and turns unreadable ones into warnings.
pub trait ObjectSource: Send + Sync {
    fn namespace(&self, name: &str) -> Option<Arc<Namespace>>;
    fn service_account(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccount>>;
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>>;
    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>>;
    /// At least every ClusterRoleBinding that may bind ServiceAccount `namespace/name`, in the
    /// order of [`ObjectSource::cluster_role_bindings`]; the builder checks each. Sources with
    /// many bindings answer from an index (see [`Reach`](super::reach::Reach)).
    fn cluster_role_bindings_for(&self, namespace: &str, name: &str) -> Vec<Arc<ClusterRoleBinding>> {
        let _ = (namespace, name);
        self.cluster_role_bindings()
    }
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>>;
    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>>;
    /// All ClusterRoles, to resolve `aggregationRule`s.
    fn cluster_roles(&self) -> Vec<Arc<ClusterRole>>;
    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>>;
    /// All StorageClasses, to find the default one.
    fn storage_classes(&self) -> Vec<Arc<StorageClass>>;
    fn services(&self, namespace: &str) -> Vec<Arc<Service>>;
    fn ingresses(&self, namespace: &str) -> Vec<Arc<Ingress>>;
    fn network_policies(&self, namespace: &str) -> Vec<Arc<NetworkPolicy>>;
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>>;
    /// `velero.io/v1` Schedules in every namespace (a Schedule can cover any namespace).
    fn velero_schedules(&self) -> Vec<Arc<DynamicObject>>;
    /// At least every Schedule that may cover namespace `namespace`, in the order of
    /// [`ObjectSource::velero_schedules`]; the builder checks each.
    fn velero_schedules_for(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        let _ = namespace;
        self.velero_schedules()
    }
    fn velero_backup_storage_location(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>>;
    /// `postgresql.cnpg.io/v1` Clusters.
    fn cnpg_clusters(&self, namespace: &str) -> Vec<Arc<DynamicObject>>;
    /// `postgresql.cnpg.io/v1` ScheduledBackups.
    fn cnpg_scheduled_backups(&self, namespace: &str) -> Vec<Arc<DynamicObject>>;
    /// `security.istio.io` PeerAuthentications; the builder also asks for `istio-system`, the
    /// mesh root namespace, for the mesh-wide policy.
    fn istio_peer_authentications(&self, namespace: &str) -> Vec<Arc<DynamicObject>>;
    fn backup_tools(&self) -> BackupTools;
}

/// What [`ObjectSet::insert_value`] did with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A supporting object, now in the index (a later object with the same key replaces it, as a
    /// later `kubectl apply` would).
    Object(ObjectKey),
    /// A workload, now in the workload list (and replacing an earlier one with the same key).
    Workload(WorkloadRef),
    /// Not stored: Secrets (never kept, so their data cannot leak into documents or memory
    /// dumps) and kinds the builder does not read.
    Ignored { api_version: String, kind: String },
    /// A `kind: List` (as `kubectl get -o yaml` writes): what happened to each item.
    List(Vec<Inserted>),
}

/// Identifies a stored supporting object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: &'static str,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

/// Objects of one namespaced kind: namespace -> name -> object. A `BTreeMap` per namespace keeps
/// lists sorted by name for stable documents.
#[derive(Debug)]
struct Namespaced<T>(HashMap<String, BTreeMap<String, Arc<T>>>);

impl<T> Default for Namespaced<T> {
    fn default() -> Self {
        Namespaced(HashMap::new())
    }
}

impl<T> Namespaced<T> {
    fn insert(&mut self, namespace: &str, name: &str, object: T) {
        self.0.entry(namespace.to_string()).or_default().insert(name.to_string(), Arc::new(object));
    }
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.0.get(namespace)?.get(name).cloned()
    }
    fn list(&self, namespace: &str) -> Vec<Arc<T>> {
        self.0.get(namespace).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
    fn all(&self) -> Vec<Arc<T>> {
        let mut namespaces: Vec<&String> = self.0.keys().collect();
        namespaces.sort();
        namespaces.into_iter().flat_map(|ns| self.0[ns].values().cloned()).collect()
    }
}

#[derive(Debug)]
struct ClusterScoped<T>(BTreeMap<String, Arc<T>>);

impl<T> Default for ClusterScoped<T> {
    fn default() -> Self {
        ClusterScoped(BTreeMap::new())
    }
}

impl<T> ClusterScoped<T> {
    fn insert(&mut self, name: &str, object: T) {
        self.0.insert(name.to_string(), Arc::new(object));
    }
    fn get(&self, name: &str) -> Option<Arc<T>> {
        self.0.get(name).cloned()
    }
    fn list(&self) -> Vec<Arc<T>> {
        self.0.values().cloned().collect()
    }
}

/// An in-memory, namespace-indexed [`ObjectSource`] built from loose objects (manifest files,
/// test fixtures). Workloads are kept in a separate list, in insertion order, for the caller to
/// iterate.
#[derive(Debug, Default)]
pub struct ObjectSet {
    namespaces: ClusterScoped<Namespace>,
    service_accounts: Namespaced<ServiceAccount>,
    role_bindings: Namespaced<RoleBinding>,
    cluster_role_bindings: ClusterScoped<ClusterRoleBinding>,
    roles: Namespaced<Role>,
    cluster_roles: ClusterScoped<ClusterRole>,
    pvcs: Namespaced<PersistentVolumeClaim>,
    storage_classes: ClusterScoped<StorageClass>,
    services: Namespaced<Service>,
    ingresses: Namespaced<Ingress>,
    network_policies: Namespaced<NetworkPolicy>,
    pdbs: Namespaced<PodDisruptionBudget>,
    velero_schedules: Namespaced<DynamicObject>,
    /// `cluster_role_bindings` and `velero_schedules` filed by what they can concern, built on
    /// the first lookup after a change.
    binding_reach: OnceLock<Reach<ClusterRoleBinding>>,
    schedule_reach: OnceLock<Reach<DynamicObject>>,
    velero_locations: Namespaced<DynamicObject>,
    cnpg_clusters: Namespaced<DynamicObject>,
    cnpg_scheduled_backups: Namespaced<DynamicObject>,
    peer_authentications: Namespaced<DynamicObject>,
    workloads: Vec<Arc<Workload>>,
    workload_index: HashMap<WorkloadRef, usize>,
    detected_tools: BackupTools,
    assumed_tools: BackupTools,
    ignored: BTreeMap<String, usize>,
}

/// The label stored on objects that arrive without a namespace, as `kubectl apply` would place
/// them.
const DEFAULT_NAMESPACE: &str = "default";

/// API groups whose presence means the tool is installed.
const VELERO_GROUP: &str = "velero.io";
const CNPG_GROUP: &str = "postgresql.cnpg.io";

impl ObjectSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Build a set from many values, stopping at the first malformed one.
    pub fn from_values(values: impl IntoIterator<Item = Value>) -> Result<Self, ContextError> {
        let mut set = Self::new();
        for value in values {
            set.insert_value(value)?;
        }
        Ok(set)
    }

    /// The workloads inserted so far, in insertion order.
    pub fn workloads(&self) -> &[Arc<Workload>] {
        &self.workloads
    }

    /// How many values were dropped, per `kind` (Secrets and kinds the builder does not read).
    pub fn ignored(&self) -> &BTreeMap<String, usize> {
        &self.ignored
    }

    /// Declare Velero installed even if no Velero object was inserted (the scanner's flag for
    /// manifests that do not carry the CRDs). `false` does not hide objects already inserted.
    pub fn set_velero_installed(&mut self, installed: bool) {
        self.assumed_tools.velero = installed;
    }

    /// Declare CloudNativePG installed; see [`ObjectSet::set_velero_installed`].
    pub fn set_cnpg_installed(&mut self, installed: bool) {
        self.assumed_tools.cnpg = installed;
    }

    /// Take in one object, dispatching on `apiVersion` and `kind`.
    ///
    /// Namespaced objects without `metadata.namespace` are placed in `default`. Any object of the
    /// `velero.io` or `postgresql.cnpg.io` group (or a CustomResourceDefinition of one) marks that
    /// tool installed. An object whose fields have the wrong types is an error naming the object;
    /// nothing here panics on bad input.
    pub fn insert_value(&mut self, mut value: Value) -> Result<Inserted, ContextError> {
        self.binding_reach = OnceLock::new();
        self.schedule_reach = OnceLock::new();
        let (api_version, kind) = type_of(&value)?;
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };

        if kind == "List" || (kind.ends_with("List") && value.get("items").is_some_and(Value::is_array)) {
            return self.insert_list(value);
        }
        self.detect_tool(&group, &kind, &value);

        let namespaced = match (group.as_str(), version.as_str(), kind.as_str()) {
            ("", "v1", "ServiceAccount" | "PersistentVolumeClaim" | "Service")
            | ("apps", "v1", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch", "v1", "CronJob")
            | ("rbac.authorization.k8s.io", "v1", "RoleBinding" | "Role")
            | ("networking.k8s.io", "v1", "Ingress" | "NetworkPolicy")
            | ("policy", "v1", "PodDisruptionBudget")
            | (VELERO_GROUP, "v1", "Schedule" | "BackupStorageLocation")
            | (CNPG_GROUP, "v1", "Cluster" | "ScheduledBackup")
            | ("security.istio.io", "v1" | "v1beta1", "PeerAuthentication") => true,
            ("", "v1", "Namespace")
            | ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding" | "ClusterRole")
            | ("storage.k8s.io", "v1", "StorageClass") => false,
            // Secrets land here too: never stored.
            _ => {
                *self.ignored.entry(kind.clone()).or_default() += 1;
                return Ok(Inserted::Ignored { api_version, kind });
            }
        };
        let namespace = if namespaced { Some(default_namespace(&mut value)?) } else { None };
        let name = object_name(&value).unwrap_or_default();
        let ns = namespace.as_deref().unwrap_or_default();
        let label = display_name(namespace.as_deref(), Some(&name));

        macro_rules! typed {
            ($t:ty) => {
                parse::<$t>(value, &kind, &label)?
            };
        }
        macro_rules! dynamic {
            ($spec:ty) => {{
                let object: DynamicObject = parse(value, &kind, &label)?;
                validate_spec::<$spec>(&object, &kind, &label)?;
                object
            }};
        }
        let key_kind: &'static str = match kind.as_str() {
            "Namespace" => {
                self.namespaces.insert(&name, typed!(Namespace));
                "Namespace"
            }
            "ServiceAccount" => {
                self.service_accounts.insert(ns, &name, typed!(ServiceAccount));
                "ServiceAccount"
            }
            "PersistentVolumeClaim" => {
                self.pvcs.insert(ns, &name, typed!(PersistentVolumeClaim));
                "PersistentVolumeClaim"
            }
            "Service" => {
                self.services.insert(ns, &name, typed!(Service));
                "Service"
            }
            "RoleBinding" => {
                self.role_bindings.insert(ns, &name, typed!(RoleBinding));
                "RoleBinding"
            }
            "Role" => {
                self.roles.insert(ns, &name, typed!(Role));
                "Role"
            }
            "ClusterRoleBinding" => {
                self.cluster_role_bindings.insert(&name, typed!(ClusterRoleBinding));
                "ClusterRoleBinding"
            }
            "ClusterRole" => {
                self.cluster_roles.insert(&name, typed!(ClusterRole));
                "ClusterRole"
            }
            "StorageClass" => {
                self.storage_classes.insert(&name, typed!(StorageClass));
                "StorageClass"
            }
            "Ingress" => {
                self.ingresses.insert(ns, &name, typed!(Ingress));
                "Ingress"
            }
            "NetworkPolicy" => {
                self.network_policies.insert(ns, &name, typed!(NetworkPolicy));
                "NetworkPolicy"
            }
            "PodDisruptionBudget" => {
                self.pdbs.insert(ns, &name, typed!(PodDisruptionBudget));
                "PodDisruptionBudget"
            }
            "Schedule" => {
                self.velero_schedules.insert(ns, &name, dynamic!(VeleroScheduleSpec));
                "Schedule"
            }
            "BackupStorageLocation" => {
                self.velero_locations.insert(ns, &name, dynamic!(StorageLocationSpec));
                "BackupStorageLocation"
            }
            "Cluster" => {
                self.cnpg_clusters.insert(ns, &name, dynamic!(CnpgClusterSpec));
                "Cluster"
            }
            "ScheduledBackup" => {
                self.cnpg_scheduled_backups.insert(ns, &name, dynamic!(ScheduledBackupSpec));
                "ScheduledBackup"
            }
            "PeerAuthentication" => {
                self.peer_authentications.insert(ns, &name, dynamic!(PeerAuthenticationSpec));
                "PeerAuthentication"
            }
            "Deployment" => return self.add_workload(Workload::from_deployment(&typed!(Deployment))?),
            "StatefulSet" => return self.add_workload(Workload::from_stateful_set(&typed!(StatefulSet))?),
            "DaemonSet" => return self.add_workload(Workload::from_daemon_set(&typed!(DaemonSet))?),
            "CronJob" => return self.add_workload(Workload::from_cron_job(&typed!(CronJob))?),
            // The match above only lets the kinds listed here through.
            _ => return Ok(Inserted::Ignored { api_version, kind }),
        };
        Ok(Inserted::Object(ObjectKey { kind: key_kind, namespace, name }))
    }

    fn insert_list(&mut self, value: Value) -> Result<Inserted, ContextError> {
        let Value::Object(mut map) = value else {
            return Err(ContextError::NotAnObject { reason: "a List that is not a JSON object".into() });
        };
        let items = match map.remove("items") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(ContextError::NotAnObject { reason: "a List whose items is not an array".into() }),
        };
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(self.insert_value(item)?);
        }
        Ok(Inserted::List(results))
    }

    fn add_workload(&mut self, workload: Workload) -> Result<Inserted, ContextError> {
        let reference = workload.reference();
        let workload = Arc::new(workload);
        match self.workload_index.get(&reference) {
            Some(&i) => self.workloads[i] = workload,
            None => {
                self.workload_index.insert(reference.clone(), self.workloads.len());
                self.workloads.push(workload);
            }
        }
        Ok(Inserted::Workload(reference))
    }

    fn detect_tool(&mut self, group: &str, kind: &str, value: &Value) {
        let crd_group = if group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition" {
            value.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default()
        } else {
            group
        };
        match crd_group {
            VELERO_GROUP => self.detected_tools.velero = true,
            CNPG_GROUP => self.detected_tools.cnpg = true,
            _ => {}
        }
    }
}

impl ObjectSource for ObjectSet {
    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(name)
    }
    fn service_account(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccount>> {
        self.service_accounts.get(namespace, name)
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>> {
        self.role_bindings.list(namespace)
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>> {
        self.cluster_role_bindings.list()
    }
    fn cluster_role_bindings_for(&self, namespace: &str, name: &str) -> Vec<Arc<ClusterRoleBinding>> {
        let reach =
            self.binding_reach.get_or_init(|| Reach::new(self.cluster_role_bindings(), super::cluster_binding_scope));
        let [account, ns] = super::service_account_keys(namespace, name);
        reach.candidates(&[&account, &ns])
    }
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>> {
        self.roles.get(namespace, name)
    }
    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>> {
        self.cluster_roles.get(name)
    }
    fn cluster_roles(&self) -> Vec<Arc<ClusterRole>> {
        self.cluster_roles.list()
    }
    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.get(namespace, name)
    }
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.storage_classes.get(name)
    }
    fn storage_classes(&self) -> Vec<Arc<StorageClass>> {
        self.storage_classes.list()
    }
    fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.services.list(namespace)
    }
    fn ingresses(&self, namespace: &str) -> Vec<Arc<Ingress>> {
        self.ingresses.list(namespace)
    }
    fn network_policies(&self, namespace: &str) -> Vec<Arc<NetworkPolicy>> {
        self.network_policies.list(namespace)
    }
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        self.pdbs.list(namespace)
    }
    fn velero_schedules(&self) -> Vec<Arc<DynamicObject>> {
        self.velero_schedules.all()
    }
    fn velero_schedules_for(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        let reach = self.schedule_reach.get_or_init(|| Reach::new(self.velero_schedules(), super::schedule_scope));
        reach.candidates(&[&super::namespace_key(namespace)])
    }
    fn velero_backup_storage_location(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.velero_locations.get(namespace, name)
    }
    fn cnpg_clusters(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.cnpg_clusters.list(namespace)
    }
    fn cnpg_scheduled_backups(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.cnpg_scheduled_backups.list(namespace)
    }
    fn istio_peer_authentications(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.peer_authentications.list(namespace)
    }
    fn backup_tools(&self) -> BackupTools {
        BackupTools {
            velero: self.detected_tools.velero || self.assumed_tools.velero,
            cnpg: self.detected_tools.cnpg || self.assumed_tools.cnpg,
        }
    }
}

/// `apiVersion` and `kind`, both required strings.
fn type_of(value: &Value) -> Result<(String, String), ContextError> {
    let Value::Object(map) = value else {
        return Err(ContextError::NotAnObject { reason: format!("expected a JSON object, got {}", json_type(value)) });
    };
    let field = |key: &str| match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(ContextError::NotAnObject {
            reason: format!(
                "{key} must be a non-empty string, got {} (object {})",
                json_type(other),
                display_name(None, object_name(value).as_deref())
            ),
        }),
        None => Err(ContextError::NotAnObject {
            reason: format!("no {key} (object {})", display_name(None, object_name(value).as_deref())),
        }),
    };
    Ok((field("apiVersion")?, field("kind")?))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object_name(value: &Value) -> Option<String> {
    value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string)
}

/// Put a namespaced object without a namespace into `default`, and return its namespace.
fn default_namespace(value: &mut Value) -> Result<String, ContextError> {
    let name = display_name(None, object_name(value).as_deref());
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let malformed = |what: &str| ContextError::NotAnObject { reason: format!("{kind} {name}: {what}") };
    let Some(map) = value.as_object_mut() else { return Err(malformed("not an object")) };
    let metadata = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    if metadata.is_null() {
        *metadata = Value::Object(Default::default());
    }
    let Some(metadata) = metadata.as_object_mut() else { return Err(malformed("metadata is not an object")) };
    match metadata.get("namespace") {
        Some(Value::String(ns)) if !ns.is_empty() => Ok(ns.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            metadata.insert("namespace".into(), Value::String(DEFAULT_NAMESPACE.into()));
            Ok(DEFAULT_NAMESPACE.to_string())
        }
        Some(other) => Err(malformed(&format!("metadata.namespace must be a string, got {}", json_type(other)))),
    }
}

fn parse<T: DeserializeOwned>(value: Value, kind: &str, label: &str) -> Result<T, ContextError> {
    serde_json::from_value(value).map_err(|source| ContextError::Malformed {
        kind: kind.to_string(),
        name: label.to_string(),
        source,
    })
}

/// Custom resources are stored as [`DynamicObject`]s, but the fields the builder reads are checked
/// here, so that a wrong type is reported once, at load time, naming the object.
fn validate_spec<S: DeserializeOwned + Default>(
    object: &DynamicObject,
    kind: &str,
    label: &str,
) -> Result<(), ContextError> {
    read_spec::<S>(object).map(drop).map_err(|source| ContextError::Malformed {
        kind: kind.to_string(),
        name: label.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_never_stored() {
        let mut set = ObjectSet::new();
        let inserted = set
            .insert_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "crm"},
                "data": {"password": "aHVudGVyMg=="}
            }))
            .unwrap();
        assert_eq!(inserted, Inserted::Ignored { api_version: "v1".into(), kind: "Secret".into() });
        assert_eq!(set.ignored().get("Secret"), Some(&1));
        // Nothing anywhere in the set mentions the secret's data.
        assert!(!format!("{set:?}").contains("aHVudGVyMg=="));
    }

    #[test]
    fn objects_without_namespace_go_to_default() {
        let mut set = ObjectSet::new();
        let inserted = set
            .insert_value(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}}))
            .unwrap();
        assert_eq!(
            inserted,
            Inserted::Object(ObjectKey {
                kind: "ServiceAccount",
                namespace: Some("default".into()),
                name: "app".into()
            })
        );
        let sa = set.service_account("default", "app").unwrap();
        assert_eq!(sa.metadata.namespace.as_deref(), Some("default"));

        let inserted = set
            .insert_value(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
            .unwrap();
        let Inserted::Workload(r) = inserted else { panic!("not a workload: {inserted:?}") };
        assert_eq!(r.namespace, "default");
        assert_eq!(set.workloads().len(), 1);
    }

    #[test]
    fn cluster_scoped_objects_keep_no_namespace() {
        let mut set = ObjectSet::new();
        let inserted = set
            .insert_value(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com"}))
            .unwrap();
        assert_eq!(inserted, Inserted::Object(ObjectKey { kind: "StorageClass", namespace: None, name: "gp3".into() }));
        assert_eq!(set.storage_classes().len(), 1);
    }

    #[test]
    fn later_objects_replace_earlier_ones() {
        let mut set = ObjectSet::new();
        for replicas in [1, 3] {
            set.insert_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "crm"},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": []}}}}))
                .unwrap();
        }
        assert_eq!(set.workloads().len(), 1);
        assert_eq!(set.workloads()[0].replicas, Some(3));
    }

    #[test]
    fn malformed_objects_name_kind_and_object() {
        let mut set = ObjectSet::new();
        let err = set
            .insert_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "crm"},
                "spec": {"replicas": "three", "template": {}}}))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("Deployment") && msg.contains("crm/web"), "{msg}");

        let err = set
            .insert_value(json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
                "metadata": {"name": "daily", "namespace": "velero"},
                "spec": {"schedule": 5}}))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("Schedule") && msg.contains("velero/daily"), "{msg}");

        let err = set
            .insert_value(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "db", "namespace": 7}}))
            .unwrap_err();
        assert!(err.to_string().contains("Service db"), "{err}");

        let err = set.insert_value(json!({"kind": "Service"})).unwrap_err();
        assert!(err.to_string().contains("apiVersion"), "{err}");
        assert!(set.insert_value(json!([1, 2])).is_err());
    }

    #[test]
    fn backup_tools_detected_from_objects_crds_or_flags() {
        let mut set = ObjectSet::new();
        assert_eq!(set.backup_tools(), BackupTools::default());
        set.insert_value(json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b"}})).unwrap();
        assert_eq!(set.backup_tools(), BackupTools { velero: true, cnpg: false });

        let mut set = ObjectSet::new();
        set.insert_value(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "clusters.postgresql.cnpg.io"}, "spec": {"group": "postgresql.cnpg.io"}}))
            .unwrap();
        assert_eq!(set.backup_tools(), BackupTools { velero: false, cnpg: true });

        let mut set = ObjectSet::new();
        set.set_velero_installed(true);
        assert!(set.backup_tools().velero);
    }

    #[test]
    fn lists_are_unpacked() {
        let mut set = ObjectSet::new();
        let inserted = set
            .insert_value(json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "crm"}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
            ]}))
            .unwrap();
        let Inserted::List(items) = inserted else { panic!("{inserted:?}") };
        assert_eq!(items.len(), 2);
        assert!(set.namespace("crm").is_some());
    }

    /// A small deterministic generator (no new dependency): xorshift over a seed.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
        fn value(&mut self, depth: u32) -> Value {
            let choice = if depth == 0 { self.next() % 5 } else { self.next() % 7 };
            match choice {
                0 => Value::Null,
                1 => Value::Bool(self.next().is_multiple_of(2)),
                2 => json!((self.next() % 2000) as i64 - 1000),
                3 => json!(-1.5e300),
                4 => Value::String(self.pick(&["", "x", "In", "*", "0 2 * * *", "720h", "true", "default"]).into()),
                5 => Value::Array((0..self.next() % 4).map(|_| self.value(depth - 1)).collect()),
                _ => {
                    let keys = [
                        "metadata",
                        "spec",
                        "name",
                        "namespace",
                        "labels",
                        "template",
                        "containers",
                        "replicas",
                        "selector",
                        "rules",
                        "subjects",
                        "roleRef",
                        "schedule",
                        "items",
                        "data",
                        "volumes",
                    ];
                    let mut map = serde_json::Map::new();
                    for _ in 0..self.next() % 5 {
                        map.insert(self.pick(&keys).into(), self.value(depth - 1));
                    }
                    Value::Object(map)
                }
            }
        }
    }

    const KINDS: &[(&str, &str)] = &[
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Service"),
        ("v1", "Secret"),
        ("v1", "List"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "CronJob"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("policy/v1", "PodDisruptionBudget"),
        ("velero.io/v1", "Schedule"),
        ("velero.io/v1", "BackupStorageLocation"),
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("postgresql.cnpg.io/v1", "ScheduledBackup"),
        ("security.istio.io/v1", "PeerAuthentication"),
        ("example.com/v1", "Widget"),
    ];

    #[test]
    fn random_values_never_panic() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let mut set = ObjectSet::new();
        for i in 0..20_000 {
            let mut value = g.value(4);
            // Most values get a real type so that the typed parsers are exercised too.
            if i % 4 != 0 {
                let (api_version, kind) = KINDS[(g.next() % KINDS.len() as u64) as usize];
                if !value.is_object() {
                    value = json!({"spec": value});
                }
                if let Some(map) = value.as_object_mut() {
                    map.insert("apiVersion".into(), api_version.into());
                    map.insert("kind".into(), kind.into());
                }
            }
            let _ = set.insert_value(value);
        }
        // Whatever got in can be built without panicking either.
        for workload in set.workloads() {
            let _ = crate::context::build(workload, &set);
        }
    }
}
