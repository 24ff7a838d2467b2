//! The input document, as Rust types. Serializing a [`WorkloadContext`] gives exactly the shape
//! described in `policies/README.md` ("The input document"), minus `params`, which the engine
//! adds. Field order follows the README so the JSON reads the same way.
//!
//! Conventions (they are what lets rules stay short): every list is present, possibly empty;
//! objects that were looked up and not found are still listed with `found: false`; `null` means
//! "not set", never "unknown because of an error" (errors become `warnings`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Serialize, Serializer};

use crate::model::{BusinessImpact, DataClassification, WorkloadKind};

/// The whole input document for one workload (without `params`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadContext {
    pub workload: WorkloadInfo,
    pub namespace: NamespaceInfo,
    pub classification: Classification,
    pub containers: Vec<ContainerInfo>,
    pub service_account: ServiceAccountInfo,
    pub rbac: Rbac,
    pub storage: Storage,
    /// Names of Secrets the pod template references (never their contents), sorted, unique.
    pub secrets: Vec<String>,
    pub services: Vec<ServiceInfo>,
    pub ingresses: Vec<IngressInfo>,
    pub network_policies: Vec<NetworkPolicyInfo>,
    pub pod_disruption_budgets: Vec<PdbInfo>,
    pub mesh: Mesh,
    pub backup: Backup,
    /// Things the builder noticed but could not use (invalid classification labels, unparsable
    /// schedules or TTLs, malformed custom resources). An addition to the README shape: rules
    /// ignore it, reports can show it so users learn why a value is `null`.
    pub warnings: Vec<String>,
}

/// The workload itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadInfo {
    pub api_version: String,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Without `kubectl.kubernetes.io/last-applied-configuration`, which repeats the whole object.
    pub annotations: BTreeMap<String, String>,
    /// Effective replicas (unset = 1); `None` for DaemonSet and CronJob.
    pub replicas: Option<i32>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    /// The pod template's spec, as in the manifest.
    pub pod_spec: PodSpec,
    pub is_database: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceInfo {
    pub name: String,
    pub found: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Where the classification labels were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClassificationSource {
    Workload,
    Namespace,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    pub data_classification: Option<DataClassification>,
    pub business_impact: Option<BusinessImpact>,
    /// `workload` when the workload carries at least one valid label, else `namespace` when the
    /// namespace supplied one, else `null`. Each label falls back to the namespace on its own.
    pub source: Option<ClassificationSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub readiness_probe: bool,
    pub liveness_probe: bool,
    pub env: Vec<EnvInfo>,
    /// `command` followed by `args`.
    pub args: Vec<String>,
    /// `PGSSLMODE` in the environment, as libpq reads it.
    pub pgsslmode: PgSslMode,
    /// Literal strings (environment values, then `command`/`args` items) that hold a PostgreSQL
    /// connection, name an sslmode, or carry a password in a URL. Facts, not judgments: the
    /// encryption rules decide what is a finding (see `context::strings`).
    pub connections: Vec<Connection>,
    /// Names of environment variables that say they hold a credential (`DB_PASSWORD`,
    /// `GITHUB_TOKEN`, `STRIPE_API_KEY`) and have a literal value that is not a `$(VAR)`
    /// reference, in the order of `env`.
    pub literal_credentials: Vec<String>,
}

/// `PGSSLMODE` in a container's environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PgSslMode {
    /// Set at all, a value from a Secret or ConfigMap included.
    pub set: bool,
    /// Its literal values, trimmed and lower-cased, sorted and unique.
    pub values: Vec<String>,
}

/// A literal string that holds a connection (never the string itself: it may hold a password).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The environment variable it is the value of; `None` on the command line.
    pub env: Option<String>,
    /// A PostgreSQL connection: a `postgres://`/`postgresql://` URL (JDBC included) or a libpq
    /// keyword/value string naming a host and a database or user.
    pub postgres: bool,
    /// Every `sslmode=` value it names, lower-cased, sorted and unique.
    pub sslmodes: Vec<String>,
    /// A `jdbc:postgresql://` URL with `ssl=true` (verify-full when no sslmode is given).
    pub jdbc_ssl_true: bool,
    /// A `scheme://user:password@host` URL whose password is not a `$(VAR)` reference.
    pub url_password: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvInfo {
    pub name: String,
    pub value: Option<String>,
    pub from_secret: Option<KeyRef>,
    pub from_config_map: Option<KeyRef>,
}

/// A key in a Secret or ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountInfo {
    pub name: String,
    pub found: bool,
    pub is_default: bool,
    /// Effective: the pod spec overrides the ServiceAccount; unset on both = true.
    pub automount_token: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rbac {
    pub bindings: Vec<BindingInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingInfo {
    /// `RoleBinding` or `ClusterRoleBinding`.
    pub kind: String,
    pub name: String,
    /// The RoleBinding's namespace; `None` for ClusterRoleBindings.
    pub namespace: Option<String>,
    pub role_ref: RoleRefInfo,
    pub role_found: bool,
    /// A ClusterRoleBinding: its rules apply in every namespace.
    pub cluster_wide: bool,
    /// The role's rules; aggregated ClusterRoles resolved into the rules of the roles they select.
    pub rules: Vec<RuleInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleRefInfo {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleInfo {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Storage {
    pub claims: Vec<ClaimInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimSource {
    /// A pod volume naming an existing PersistentVolumeClaim.
    Volume,
    /// A StatefulSet `volumeClaimTemplates` entry (one PVC per replica, same spec).
    VolumeClaimTemplate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimInfo {
    pub name: String,
    pub source: ClaimSource,
    /// Whether the PVC exists (volumeClaimTemplates always do: the template is the spec).
    pub found: bool,
    /// After defaulting to the cluster's default StorageClass; `None` when there is none, when the
    /// claim opts out with `storageClassName: ""`, or when the claim was not found.
    pub storage_class_name: Option<String>,
    /// `None` exactly when `storage_class_name` is.
    pub storage_class: Option<StorageClassInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageClassInfo {
    pub name: String,
    pub found: bool,
    pub is_default: bool,
    pub provisioner: Option<String>,
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    pub name: String,
    /// `ClusterIP` when unset, as the API server defaults it.
    #[serde(rename = "type")]
    pub type_: String,
    pub ports: Vec<ServicePortInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortInfo {
    pub name: Option<String>,
    pub port: i32,
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressInfo {
    pub name: String,
    /// `spec.ingressClassName`, else the legacy `kubernetes.io/ingress.class` annotation.
    pub class_name: Option<String>,
    pub hosts: Vec<String>,
    pub tls_hosts: Vec<String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyInfo {
    pub name: String,
    /// Effective policy types: when unset, `Ingress` plus `Egress` if the policy has egress rules
    /// (the API server's defaulting).
    pub policy_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbInfo {
    pub name: String,
    /// A number or a percentage string, as written.
    pub min_available: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mesh {
    pub istio: IstioInfo,
    pub linkerd: LinkerdInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioInfo {
    pub injected: bool,
    /// `STRICT`, `PERMISSIVE` or `DISABLE`; `None` when no PeerAuthentication sets a mode (Istio
    /// then behaves as `PERMISSIVE`).
    pub peer_authentication_mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkerdInfo {
    pub injected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backup {
    pub tools: BackupToolsInfo,
    pub velero: VeleroInfo,
    pub cnpg: CnpgInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackupToolsInfo {
    pub velero: bool,
    pub cnpg: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VeleroInfo {
    /// Only the Schedules whose selection covers this workload.
    pub schedules: Vec<VeleroScheduleInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VeleroScheduleInfo {
    pub name: String,
    pub namespace: String,
    pub schedule: String,
    pub paused: bool,
    /// Longest gap between two runs, from the cron; `None` if unparsable.
    #[serde(serialize_with = "hours")]
    pub interval_hours: Option<f64>,
    /// As written; `None` when unset.
    pub ttl: Option<String>,
    /// 720 (Velero's default) when `ttl` is unset; `None` when `ttl` is unparsable.
    #[serde(serialize_with = "hours")]
    pub ttl_hours: Option<f64>,
    pub snapshot_volumes: Option<bool>,
    pub included_namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    pub storage_location: StorageLocationInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageLocationInfo {
    pub name: String,
    pub found: bool,
    pub provider: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    /// `ReadWrite` (Velero's default) when the location is found and the field unset.
    pub access_mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CnpgInfo {
    /// CloudNativePG Clusters this workload uses (same namespace, referenced by env or args).
    pub clusters: Vec<CnpgClusterInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CnpgClusterInfo {
    pub name: String,
    pub backup_configured: bool,
    /// `barmanObjectStore` or `plugin`; `None` when no backup is configured.
    pub method: Option<String>,
    /// Only known for `barmanObjectStore` (the plugin keeps it in a separate ObjectStore).
    pub destination_path: Option<String>,
    pub retention_policy: Option<String>,
    pub retention_days: Option<u32>,
    pub scheduled_backups: Vec<ScheduledBackupInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupInfo {
    pub name: String,
    pub schedule: String,
    pub suspend: bool,
    #[serde(serialize_with = "hours")]
    pub interval_hours: Option<f64>,
    /// `barmanObjectStore` (CloudNativePG's default), `volumeSnapshot` or `plugin`.
    pub method: String,
}

/// Hours as a JSON integer when whole (`24`, not `24.0`), so documents read like the README and
/// rule messages print cleanly.
fn hours<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(h) if h.fract() == 0.0 && *h >= 0.0 && *h < 9.0e15 => s.serialize_u64(*h as u64),
        Some(h) => s.serialize_f64(*h),
        None => s.serialize_none(),
    }
}
