//! Backups that protect the workload's data: Velero Schedules covering it, and CloudNativePG
//! Clusters it talks to. Also holds the typed views of the custom resources the builder reads
//! (Velero, CloudNativePG, Istio): `k8s-openapi` has no types for them, and reading a few fields
//! through small serde structs gives one place that decides what "malformed" means, used both
//! when loading manifests and when building.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::DynamicObject;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::cron;
use super::document::{
    Backup, BackupToolsInfo, CnpgClusterInfo, CnpgInfo, ScheduledBackupInfo, StorageLocationInfo, VeleroInfo,
    VeleroScheduleInfo,
};
use super::duration::{parse_go_duration, parse_retention_days, seconds_to_hours};
use super::error::display_name;
use super::objects::ObjectSource;
use super::selector;
use super::workload::Workload;

/// Velero's TTL when a Schedule sets none (30 days).
const VELERO_DEFAULT_TTL_HOURS: f64 = 720.0;

/// `velero.io/v1` Schedule `spec`, the fields we read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VeleroScheduleSpec {
    schedule: Option<String>,
    paused: Option<bool>,
    template: Option<VeleroTemplate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VeleroTemplate {
    included_namespaces: Option<Vec<String>>,
    excluded_namespaces: Option<Vec<String>>,
    label_selector: Option<LabelSelector>,
    or_label_selectors: Option<Vec<LabelSelector>>,
    snapshot_volumes: Option<bool>,
    storage_location: Option<String>,
    ttl: Option<String>,
}

/// `velero.io/v1` BackupStorageLocation `spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageLocationSpec {
    provider: Option<String>,
    object_storage: Option<ObjectStorage>,
    /// Provider-specific; only `region` is read, so other keys may hold anything.
    config: Option<BTreeMap<String, Value>>,
    access_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ObjectStorage {
    bucket: Option<String>,
}

/// `postgresql.cnpg.io/v1` Cluster `spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CnpgClusterSpec {
    backup: Option<CnpgBackup>,
    plugins: Option<Vec<CnpgPlugin>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CnpgBackup {
    barman_object_store: Option<BarmanObjectStore>,
    retention_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BarmanObjectStore {
    destination_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CnpgPlugin {
    name: Option<String>,
    enabled: Option<bool>,
    #[serde(rename = "isWALArchiver")]
    is_wal_archiver: Option<bool>,
}

/// `postgresql.cnpg.io/v1` ScheduledBackup `spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduledBackupSpec {
    schedule: Option<String>,
    suspend: Option<bool>,
    cluster: Option<LocalName>,
    method: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct LocalName {
    name: Option<String>,
}

/// `security.istio.io` PeerAuthentication `spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeerAuthenticationSpec {
    selector: Option<WorkloadSelector>,
    mtls: Option<Mtls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSelector {
    match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct Mtls {
    mode: Option<String>,
}

/// Read a custom resource's `spec` (missing or `null` = all defaults).
pub(crate) fn read_spec<S: DeserializeOwned + Default>(object: &DynamicObject) -> Result<S, serde_json::Error> {
    match object.data.get("spec") {
        None | Some(Value::Null) => Ok(S::default()),
        Some(spec) => S::deserialize(spec),
    }
}

/// [`read_spec`] with the error as a warning sentence naming the object.
fn read_or_warn<S: DeserializeOwned + Default>(
    object: &DynamicObject,
    kind: &str,
    warnings: &mut Vec<String>,
) -> Option<S> {
    match read_spec(object) {
        Ok(spec) => Some(spec),
        Err(e) => {
            let name = display_name(object.metadata.namespace.as_deref(), object.metadata.name.as_deref());
            warnings.push(format!("skipped malformed {kind} {name}: {e}"));
            None
        }
    }
}

impl PeerAuthenticationSpec {
    pub(crate) fn read(object: &DynamicObject) -> Result<Self, String> {
        let mut warnings = Vec::new();
        read_or_warn(object, "PeerAuthentication", &mut warnings).ok_or_else(|| warnings.concat())
    }

    /// `None` when the policy has no (or an empty) selector, i.e. is namespace-wide; otherwise
    /// whether it selects pods with `labels`.
    pub(crate) fn selects(&self, labels: &BTreeMap<String, String>) -> Option<bool> {
        let wanted = self.selector.as_ref()?.match_labels.as_ref().filter(|m| !m.is_empty())?;
        Some(wanted.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// The mTLS mode, `None` when not set or `UNSET` (inherit).
    pub(crate) fn mode(&self) -> Option<String> {
        let mode = self.mtls.as_ref()?.mode.as_ref()?.to_ascii_uppercase();
        (!mode.is_empty() && mode != "UNSET").then_some(mode)
    }
}

pub(crate) fn backup(w: &Workload, src: &dyn ObjectSource, warnings: &mut Vec<String>) -> Backup {
    let tools = src.backup_tools();
    Backup {
        tools: BackupToolsInfo { velero: tools.velero, cnpg: tools.cnpg },
        velero: VeleroInfo { schedules: velero_schedules(w, src, warnings) },
        cnpg: CnpgInfo { clusters: cnpg_clusters(w, src, warnings) },
    }
}

/// Velero Schedules whose backups include this workload.
///
/// Namespaces: `includedNamespaces` empty or containing `*` or a pattern matching the namespace
/// (`*` and `?` wildcards), and no `excludedNamespaces` entry matching it.
///
/// Labels: Velero applies `labelSelector` (or any of `orLabelSelectors`) to each object on its
/// own, so a selector may pick the pods and PVCs of a workload while skipping the Deployment
/// itself. We count the workload as covered when the selector matches the workload's labels *or*
/// its pod template labels: the pod labels are what a backup of the data (pods, their volumes)
/// depends on, the workload labels are what users usually put the backup label on. Resource
/// filters (`includedResources`) are not considered.
fn velero_schedules(w: &Workload, src: &dyn ObjectSource, warnings: &mut Vec<String>) -> Vec<VeleroScheduleInfo> {
    let namespace = w.namespace();
    let mut out = Vec::new();
    for object in src.velero_schedules() {
        let Some(spec) = read_or_warn::<VeleroScheduleSpec>(&object, "Schedule", warnings) else { continue };
        let template = spec.template.unwrap_or_default();
        let included = template.included_namespaces.unwrap_or_default();
        let excluded = template.excluded_namespaces.unwrap_or_default();
        let namespace_ok = (included.is_empty() || included.iter().any(|p| glob(p, namespace)))
            && !excluded.iter().any(|p| glob(p, namespace));
        let selects = |s: &LabelSelector| selector::matches(s, w.labels()) || selector::matches(s, &w.pod_labels);
        let labels_ok = match (&template.label_selector, &template.or_label_selectors) {
            (Some(s), _) => selects(s),
            (None, Some(any)) if !any.is_empty() => any.iter().any(selects),
            _ => true,
        };
        if !(namespace_ok && labels_ok) {
            continue;
        }

        let name = object.metadata.name.clone().unwrap_or_default();
        let schedule_ns = object.metadata.namespace.clone().unwrap_or_default();
        let label = display_name(Some(&schedule_ns), Some(&name));
        let schedule = spec.schedule.unwrap_or_default();
        let interval_hours = cron::interval_hours(&schedule);
        if interval_hours.is_none() {
            warnings.push(format!("Velero Schedule {label}: cannot read schedule {schedule:?}"));
        }
        let ttl_hours = match &template.ttl {
            None => Some(VELERO_DEFAULT_TTL_HOURS),
            Some(ttl) => {
                let hours = parse_go_duration(ttl).map(seconds_to_hours);
                if hours.is_none() {
                    warnings.push(format!("Velero Schedule {label}: cannot read ttl {ttl:?}"));
                }
                hours
            }
        };
        let location_name =
            template.storage_location.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "default".to_string());
        out.push(VeleroScheduleInfo {
            storage_location: storage_location(&schedule_ns, &location_name, src, warnings),
            name,
            namespace: schedule_ns,
            schedule,
            paused: spec.paused.unwrap_or(false),
            interval_hours,
            ttl: template.ttl,
            ttl_hours,
            snapshot_volumes: template.snapshot_volumes,
            included_namespaces: included,
            excluded_namespaces: excluded,
        });
    }
    out
}

fn storage_location(
    namespace: &str,
    name: &str,
    src: &dyn ObjectSource,
    warnings: &mut Vec<String>,
) -> StorageLocationInfo {
    let spec = src
        .velero_backup_storage_location(namespace, name)
        .and_then(|bsl| read_or_warn::<StorageLocationSpec>(&bsl, "BackupStorageLocation", warnings));
    match spec {
        Some(spec) => StorageLocationInfo {
            name: name.to_string(),
            found: true,
            provider: spec.provider,
            bucket: spec.object_storage.and_then(|o| o.bucket),
            region: spec.config.as_ref().and_then(|c| c.get("region")).and_then(Value::as_str).map(str::to_string),
            access_mode: Some(spec.access_mode.unwrap_or_else(|| "ReadWrite".to_string())),
        },
        None => StorageLocationInfo {
            name: name.to_string(),
            found: false,
            provider: None,
            bucket: None,
            region: None,
            access_mode: None,
        },
    }
}

/// Shell-style match with `*` (any run) and `?` (one character), as Velero's namespace filters.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matcher with single backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// CloudNativePG Clusters in the workload's namespace that the workload talks to: a container's
/// env value or command line names one of the cluster's Services (`<cluster>-rw`, `-ro`, `-r`,
/// possibly with a domain suffix), or the cluster name itself in a host position; or the pod uses
/// the credentials Secret CloudNativePG generates (`<cluster>-app`, `<cluster>-superuser`).
fn cnpg_clusters(w: &Workload, src: &dyn ObjectSource, warnings: &mut Vec<String>) -> Vec<CnpgClusterInfo> {
    let namespace = w.namespace();
    let clusters = src.cnpg_clusters(namespace);
    if clusters.is_empty() {
        return Vec::new();
    }
    let spec = &w.pod_spec;
    let all_containers = spec.init_containers.iter().flatten().chain(&spec.containers);
    let mut texts: Vec<&str> = Vec::new();
    let mut secrets: Vec<&str> = Vec::new();
    for c in all_containers {
        for e in c.env.iter().flatten() {
            texts.extend(e.value.as_deref());
            secrets.extend(e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()).map(|r| r.name.as_str()));
        }
        for e in c.env_from.iter().flatten() {
            secrets.extend(e.secret_ref.as_ref().map(|r| r.name.as_str()));
        }
        texts.extend(c.command.iter().flatten().chain(c.args.iter().flatten()).map(String::as_str));
    }
    for v in spec.volumes.iter().flatten() {
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.as_deref()));
    }

    let scheduled: Vec<(String, ScheduledBackupSpec)> = src
        .cnpg_scheduled_backups(namespace)
        .iter()
        .filter_map(|sb| {
            let spec = read_or_warn::<ScheduledBackupSpec>(sb, "ScheduledBackup", warnings)?;
            Some((sb.metadata.name.clone().unwrap_or_default(), spec))
        })
        .collect();

    let mut out = Vec::new();
    for cluster in clusters {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let uses = secrets.iter().any(|s| *s == format!("{name}-app") || *s == format!("{name}-superuser"))
            || texts.iter().any(|t| references_cluster(t, &name, namespace));
        if !uses {
            continue;
        }
        let Some(spec) = read_or_warn::<CnpgClusterSpec>(&cluster, "Cluster", warnings) else { continue };
        out.push(cnpg_cluster_info(&name, namespace, spec, &scheduled, warnings));
    }
    out
}

fn cnpg_cluster_info(
    name: &str,
    namespace: &str,
    spec: CnpgClusterSpec,
    scheduled: &[(String, ScheduledBackupSpec)],
    warnings: &mut Vec<String>,
) -> CnpgClusterInfo {
    let backup = spec.backup.unwrap_or_default();
    let barman = backup.barman_object_store;
    let plugin = spec.plugins.iter().flatten().any(|p| {
        p.enabled != Some(false)
            && (p.is_wal_archiver == Some(true) || p.name.as_deref().is_some_and(|n| n.contains("barman-cloud")))
    });
    let method = if barman.is_some() {
        Some("barmanObjectStore")
    } else if plugin {
        Some("plugin")
    } else {
        None
    };
    let retention_policy = backup.retention_policy.filter(|_| barman.is_some());
    let retention_days = retention_policy.as_deref().and_then(parse_retention_days);
    if let (Some(policy), None) = (&retention_policy, retention_days) {
        warnings.push(format!("CloudNativePG Cluster {namespace}/{name}: cannot read retentionPolicy {policy:?}"));
    }
    let scheduled_backups = scheduled
        .iter()
        .filter(|(_, sb)| sb.cluster.as_ref().and_then(|c| c.name.as_deref()) == Some(name))
        .map(|(sb_name, sb)| {
            let schedule = sb.schedule.clone().unwrap_or_default();
            let interval_hours = cron::interval_hours(&schedule);
            if interval_hours.is_none() {
                warnings.push(format!("ScheduledBackup {namespace}/{sb_name}: cannot read schedule {schedule:?}"));
            }
            ScheduledBackupInfo {
                name: sb_name.clone(),
                schedule,
                suspend: sb.suspend.unwrap_or(false),
                interval_hours,
                method: sb.method.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "barmanObjectStore".to_string()),
            }
        })
        .collect();
    CnpgClusterInfo {
        name: name.to_string(),
        backup_configured: method.is_some(),
        method: method.map(str::to_string),
        destination_path: barman.and_then(|b| b.destination_path),
        retention_policy,
        retention_days,
        scheduled_backups,
    }
}

/// Does `text` (an env value or a command-line word) point at CloudNativePG cluster `name`?
///
/// Host-like tokens (runs of letters, digits, `.`, `-`, `_`) are compared by their first DNS
/// label. `<name>-rw`, `<name>-ro`, `<name>-r` always count (they are the cluster's Services).
/// The bare `<name>` counts only in a host position — the whole value, after `@`, `//` or
/// `host=`, before `:<port>`, or with a `.<namespace>`/`.svc` suffix — so that an `APP=crm`
/// variable does not tie an app to a cluster that happens to be called `crm`.
fn references_cluster(text: &str, name: &str, namespace: &str) -> bool {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let services = [format!("{name}-rw"), format!("{name}-ro"), format!("{name}-r")];
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find(is_token_char) {
        let after_start = &rest[start..];
        let len = after_start.find(|c: char| !is_token_char(c)).unwrap_or(after_start.len());
        let token = &after_start[..len];
        let begin = offset + start;
        let end = begin + len;
        let mut labels = token.split('.');
        let first = labels.next().unwrap_or_default();
        if services.iter().any(|s| s == first) {
            return true;
        }
        if first == name {
            let second = labels.next();
            let before = &text[..begin];
            let after = &text[end..];
            let host_position = text.trim() == first
                || before.ends_with('@')
                || before.ends_with("//")
                || before.to_ascii_lowercase().ends_with("host=")
                || after.strip_prefix(':').is_some_and(|p| p.starts_with(|c: char| c.is_ascii_digit()))
                || second.is_some_and(|s| s == namespace || s == "svc");
            if host_position {
                return true;
            }
        }
        offset = end;
        rest = &text[end..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_globs() {
        assert!(glob("*", "crm"));
        assert!(glob("crm", "crm"));
        assert!(!glob("crm", "crm-prod"));
        assert!(glob("crm-*", "crm-prod"));
        assert!(glob("c?m", "crm"));
        assert!(glob("*-prod", "crm-prod"));
        assert!(!glob("*-prod", "crm-stage"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("", "crm"));
    }

    #[test]
    fn cluster_references() {
        let yes = |t: &str| references_cluster(t, "crm-pg", "crm");
        assert!(yes("postgres://app:pw@crm-pg-rw.crm.svc:5432/app?sslmode=require"));
        assert!(yes("host=crm-pg-ro port=5432"));
        assert!(yes("crm-pg-r"));
        assert!(yes("crm-pg"));
        assert!(yes("crm-pg.crm"));
        assert!(yes("crm-pg.crm.svc.cluster.local"));
        assert!(yes("--db-host=crm-pg:5432"));
        assert!(yes("user@crm-pg"));
        assert!(yes("jdbc:postgresql://crm-pg/app"));
        assert!(!yes("crm-pg-rwx"));
        assert!(!yes("crm-pg-2"));
        assert!(!yes("other-crm-pg-rw"));
        assert!(!yes("--name crm-pg"));
        assert!(!yes("crm-pg.yaml"));
        assert!(!yes(""));
    }

    #[test]
    fn peer_authentication_levels() {
        let pa: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "db", "namespace": "crm"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "mtls": {"mode": "strict"}}
        }))
        .unwrap();
        let spec = PeerAuthenticationSpec::read(&pa).unwrap();
        let labels = BTreeMap::from([("app".to_string(), "db".to_string())]);
        assert_eq!(spec.selects(&labels), Some(true));
        assert_eq!(spec.selects(&BTreeMap::new()), Some(false));
        assert_eq!(spec.mode().as_deref(), Some("STRICT"));
        assert_eq!(PeerAuthenticationSpec::default().selects(&labels), None);
        let unset = PeerAuthenticationSpec { mtls: Some(Mtls { mode: Some("UNSET".into()) }), ..Default::default() };
        assert_eq!(unset.mode(), None);
    }
}
