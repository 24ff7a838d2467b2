//! Backups that protect the workload's data: Velero Schedules covering it, and CloudNativePG
//! Clusters it talks to. Also holds the typed views of the custom resources the builder reads
//! (Velero, CloudNativePG, Istio): `k8s-openapi` has no types for them, and reading a few fields
//! through small serde structs gives one place that decides what "malformed" means, used both
//! when loading manifests and when building.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
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
use super::reach::Scope;
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

pub(crate) fn backup(w: &Workload, pod_spec: &PodSpec, src: &dyn ObjectSource, warnings: &mut Vec<String>) -> Backup {
    let tools = src.backup_tools();
    Backup {
        tools: BackupToolsInfo { velero: tools.velero, cnpg: tools.cnpg },
        velero: VeleroInfo { schedules: velero_schedules(w, src, warnings) },
        cnpg: CnpgInfo { clusters: cnpg_clusters(w, pod_spec, src, warnings) },
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
    let mut out = Vec::new();
    for object in src.velero_schedules_for(w.namespace()) {
        // Most Schedules of a large cluster cover other namespaces: rule those out in place,
        // without building the typed spec (this runs for every Schedule and every workload).
        if passes_over(&object, w) {
            continue;
        }
        let Some(spec) = read_or_warn::<VeleroScheduleSpec>(&object, "Schedule", warnings) else { continue };
        let template = spec.template.unwrap_or_default();
        if !covers(&template, w) {
            continue;
        }
        let included = template.included_namespaces.unwrap_or_default();
        let excluded = template.excluded_namespaces.unwrap_or_default();

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

/// Does a Schedule with this `template` cover workload `w` (see [`velero_schedules`])?
fn covers(template: &VeleroTemplate, w: &Workload) -> bool {
    let included = template.included_namespaces.as_deref().unwrap_or_default().iter().map(String::as_str);
    let excluded = template.excluded_namespaces.as_deref().unwrap_or_default().iter().map(String::as_str);
    namespace_selected(included, excluded, w.namespace())
        && labels_selected(template.label_selector.as_ref(), template.or_label_selectors.as_deref(), w)
}

/// `includedNamespaces` empty or one of its patterns matching `namespace`, and no
/// `excludedNamespaces` pattern matching it.
fn namespace_selected<'a>(
    included: impl Iterator<Item = &'a str>,
    mut excluded: impl Iterator<Item = &'a str>,
    namespace: &str,
) -> bool {
    let mut included = included.peekable();
    (included.peek().is_none() || included.any(|p| glob(p, namespace))) && !excluded.any(|p| glob(p, namespace))
}

/// `labelSelector` (else any of a non-empty `orLabelSelectors`) selecting the workload's or its
/// pods' labels; no selector selects everything.
fn labels_selected(
    label_selector: Option<&LabelSelector>,
    or_selectors: Option<&[LabelSelector]>,
    w: &Workload,
) -> bool {
    let selects = |s: &LabelSelector| selector::matches(s, w.labels()) || selector::matches(s, &w.pod_labels);
    match (label_selector, or_selectors) {
        (Some(s), _) => selects(s),
        (None, Some(any)) if !any.is_empty() => any.iter().any(selects),
        _ => true,
    }
}

/// `true` only when the Schedule certainly does not cover `w` *and* its spec reads as a
/// [`VeleroScheduleSpec`] without error, so skipping it changes neither the document nor the
/// warnings. Reads the spec's JSON in place (see [`Filters::read`]).
fn passes_over(object: &DynamicObject, w: &Workload) -> bool {
    let Some(f) = Filters::read(object) else { return false };
    // `strings` vouched that every element is a string.
    fn as_str(v: &Value) -> &str {
        v.as_str().unwrap_or_default()
    }
    let namespace_ok = namespace_selected(f.included.iter().map(as_str), f.excluded.iter().map(as_str), w.namespace());
    !(namespace_ok && labels_selected(f.label_selector.as_ref(), f.or_selectors.as_deref(), w))
}

/// The namespaces a Velero Schedule can cover, for [`Reach`](super::reach::Reach): the names
/// its `includedNamespaces` lists when they are plain names (a name without wildcards matches
/// only itself) and the spec reads without error (else the typed path must see it for every
/// workload, to report it); everywhere otherwise. Keys are [`namespace_key`]s.
pub(crate) fn schedule_scope(object: &DynamicObject) -> Scope {
    let Some(f) = Filters::read(object) else { return Scope::Everywhere };
    let names: Option<Vec<String>> =
        f.included.iter().map(|v| v.as_str().filter(|p| !p.contains(['*', '?'])).map(namespace_key)).collect();
    match names {
        Some(keys) if !keys.is_empty() => Scope::Keys(keys),
        _ => Scope::Everywhere,
    }
}

/// The [`Reach`](super::reach::Reach) key of a namespace.
pub(crate) fn namespace_key(namespace: &str) -> String {
    format!("ns\0{namespace}")
}

/// A Schedule's namespace and label filters, read from its JSON in place.
struct Filters<'a> {
    included: &'a [Value],
    excluded: &'a [Value],
    label_selector: Option<LabelSelector>,
    or_selectors: Option<Vec<LabelSelector>>,
}

impl<'a> Filters<'a> {
    /// The filters, when the spec reads as a [`VeleroScheduleSpec`] without error and has a
    /// template: no allocation, except for label selectors (parsed as [`read_spec`] would
    /// parse them, to be judged exactly alike). `None` for anything it does not vouch for (a
    /// type it does not expect, a spec given as an array, no spec or template, which means no
    /// filters), leaving the decision to the typed path.
    fn read(object: &'a DynamicObject) -> Option<Filters<'a>> {
        // No spec, or a `null` one, means no filters: every workload is covered.
        let Some(Value::Object(spec)) = object.data.get("spec") else { return None };
        let mut template = None;
        for (key, value) in spec {
            let readable = match key.as_str() {
                "schedule" => value.is_null() || value.is_string(),
                "paused" => value.is_null() || value.is_boolean(),
                "template" => match value {
                    Value::Object(t) => {
                        template = Some(t);
                        true
                    }
                    _ => false, // `null` (no filters, covered) or let serde judge
                },
                _ => true, // ignored by serde as well
            };
            if !readable {
                return None;
            }
        }
        // Without a template nothing filters: covered.
        let template = template?;

        let mut f = Filters { included: &[], excluded: &[], label_selector: None, or_selectors: None };
        for (key, value) in template {
            let readable = match key.as_str() {
                "includedNamespaces" => strings(value).map(|v| f.included = v).is_some(),
                "excludedNamespaces" => strings(value).map(|v| f.excluded = v).is_some(),
                "labelSelector" => Option::<LabelSelector>::deserialize(value).map(|s| f.label_selector = s).is_ok(),
                "orLabelSelectors" => {
                    Option::<Vec<LabelSelector>>::deserialize(value).map(|s| f.or_selectors = s).is_ok()
                }
                "snapshotVolumes" => value.is_null() || value.is_boolean(),
                "storageLocation" | "ttl" => value.is_null() || value.is_string(),
                _ => true,
            };
            if !readable {
                return None;
            }
        }
        Some(f)
    }
}

/// A `null` (as `[]`) or an array of strings, as an `Option<Vec<String>>` field reads without
/// error; `None` for anything else.
fn strings(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Null => Some(&[]),
        Value::Array(items) if items.iter().all(Value::is_string) => Some(items),
        _ => None,
    }
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
///
/// Compares bytes when `text` is ASCII (namespace names always are), characters otherwise; both
/// give the same answer on ASCII text, since a non-ASCII pattern character, whole or as bytes,
/// matches no ASCII character.
fn glob(pattern: &str, text: &str) -> bool {
    if pattern == text {
        // A string matches itself as a pattern, wildcards included: each unit matches its copy.
        true
    } else if !pattern.bytes().any(|b| b == b'*' || b == b'?') {
        // The usual filter lists plain namespace names.
        false
    } else if text.is_ascii() {
        glob_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
    } else {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        glob_units(&p, &t, '*', '?')
    }
}

/// [`glob`] over any units (bytes or characters), `star` and `any` being `*` and `?`.
fn glob_units<T: Copy + PartialEq>(p: &[T], t: &[T], star_unit: T, any_unit: T) -> bool {
    // Iterative matcher with single backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_unit || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_unit {
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
    p[pi..].iter().all(|c| *c == star_unit)
}

/// CloudNativePG Clusters in the workload's namespace that the workload talks to: a container's
/// env value or command line names one of the cluster's Services (`<cluster>-rw`, `-ro`, `-r`,
/// possibly with a domain suffix), or the cluster name itself in a host position; or the pod uses
/// the credentials Secret CloudNativePG generates (`<cluster>-app`, `<cluster>-superuser`).
fn cnpg_clusters(
    w: &Workload,
    spec: &PodSpec,
    src: &dyn ObjectSource,
    warnings: &mut Vec<String>,
) -> Vec<CnpgClusterInfo> {
    let namespace = w.namespace();
    let clusters = src.cnpg_clusters(namespace);
    if clusters.is_empty() {
        return Vec::new();
    }
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
        // `<name>-app` or `<name>-superuser`, compared in place.
        let generated_secret =
            |s: &str| s.strip_prefix(name.as_str()).is_some_and(|suffix| suffix == "-app" || suffix == "-superuser");
        let uses = secrets.iter().any(|s| generated_secret(s))
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
    // `<name>-rw`, `<name>-ro` or `<name>-r`, compared in place.
    let is_service =
        |label: &str| label.strip_prefix(name).is_some_and(|suffix| matches!(suffix, "-rw" | "-ro" | "-r"));
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
        if is_service(first) {
            return true;
        }
        if first == name {
            let second = labels.next();
            let before = &text[..begin];
            let after = &text[end..];
            let host_position = text.trim() == first
                || before.ends_with('@')
                || before.ends_with("//")
                || ends_with_ignore_ascii_case(before, "host=")
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

/// `text.to_ascii_lowercase().ends_with(suffix)` for a lowercase ASCII `suffix`, without the copy.
fn ends_with_ignore_ascii_case(text: &str, suffix: &str) -> bool {
    let (text, suffix) = (text.as_bytes(), suffix.as_bytes());
    text.len() >= suffix.len() && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        assert!(glob("", ""));
        assert!(glob("*", ""));
        assert!(!glob("?", ""));
        assert!(glob("crm-????", "crm-prod"));
        assert!(!glob("crm-???", "crm-prod"));
        assert!(glob("*prod*", "crm-prod-eu"));
        assert!(glob("c*m*d", "crm-prod"));
        assert!(!glob("c*m*x", "crm-prod"));
        assert!(glob("**", "crm"));
        // A pattern matches its own text, wildcards read as themselves included.
        assert!(glob("a*?", "a*?"));
        assert!(glob("日?", "日?"));
    }

    #[test]
    fn non_ascii_globs_match_characters() {
        // Non-ASCII text goes character by character: `?` is one character, not one byte.
        assert!(glob("?", "é"));
        assert!(!glob("??", "é"));
        assert!(glob("caf?", "café"));
        assert!(glob("*é", "café"));
        assert!(glob("日?語", "日本語"));
        assert!(!glob("日?語", "日本本語"));
        assert!(glob("日*語", "日本本語"));
        // A non-ASCII pattern character never matches ASCII text (which goes byte by byte).
        assert!(!glob("é", "e"));
        assert!(!glob("caf?", "cafe?"));
        assert!(glob("caf?", "cafe"));
        assert!(!glob("*é*", "crm"));
        assert!(glob("*", "日本"));
    }

    /// The character-wise matcher `glob` had before its byte-wise fast path.
    fn glob_by_chars(pattern: &str, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        glob_units(&p, &t, '*', '?')
    }

    /// A tiny deterministic generator (xorshift64*) for the randomized comparisons below.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
        fn pick<T: Clone>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())].clone()
        }
    }

    #[test]
    fn byte_and_character_globs_agree() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let pattern_units = ["a", "b", "-", "*", "?", "é", "日"];
        let text_units = ["a", "b", "-", "é", "日", "*", "?"];
        for round in 0..50_000 {
            // Half the texts ASCII only (the byte path), half possibly not.
            let text_alphabet = if round % 2 == 0 { &text_units[..3] } else { &text_units[..] };
            let pattern: String = (0..rng.below(7)).map(|_| rng.pick(&pattern_units)).collect();
            let text: String = (0..rng.below(7)).map(|_| rng.pick(text_alphabet)).collect();
            assert_eq!(glob(&pattern, &text), glob_by_chars(&pattern, &text), "{pattern:?} on {text:?}");
        }
    }

    fn workloads() -> Vec<Arc<Workload>> {
        let deployment = |ns: &str, labels: serde_json::Value, pod_labels: serde_json::Value| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "app", "namespace": ns, "labels": labels},
                "spec": {"selector": {}, "template": {"metadata": {"labels": pod_labels},
                    "spec": {"containers": [{"name": "c", "image": "app"}]}}}})
        };
        let set = super::super::ObjectSet::from_values([
            deployment("crm", serde_json::json!({}), serde_json::json!({})),
            deployment("crm-prod", serde_json::json!({"backup": "yes"}), serde_json::json!({"app": "api"})),
            deployment("other", serde_json::json!({}), serde_json::json!({"backup": "yes"})),
            deployment("é-ns", serde_json::json!({"app": "api"}), serde_json::json!({})),
        ])
        .unwrap();
        set.workloads().to_vec()
    }

    /// A random Schedule spec: each field absent, `null`, well formed or of a wrong type.
    fn random_spec(rng: &mut Rng) -> Option<Value> {
        use serde_json::json;
        let namespaces = [
            json!(null),
            json!([]),
            json!(["crm"]),
            json!(["crm-*"]),
            json!(["*"]),
            json!(["other", "crm-prod"]),
            json!(["c?m"]),
            json!(["é-*"]),
            json!([1]),
            json!(["crm", null]),
            json!("crm"),
            json!({}),
        ];
        let selectors = [
            json!(null),
            json!({}),
            json!({"matchLabels": {"backup": "yes"}}),
            json!({"matchLabels": {"app": "api"}}),
            json!({"matchLabels": {"backup": 1}}),
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
            json!({"matchExpressions": [{"key": "app"}]}),
            json!({"matchLabels": null, "extra": true}),
            json!(5),
            json!([]),
        ];
        let strings = [json!(null), json!("0 2 * * *"), json!("24h"), json!(""), json!(3), json!(true), json!(["x"])];
        let bools = [json!(null), json!(true), json!(false), json!("true"), json!(0)];
        let mut template = serde_json::Map::new();
        for key in ["includedNamespaces", "excludedNamespaces"] {
            if rng.below(2) == 0 {
                template.insert(key.into(), rng.pick(&namespaces));
            }
        }
        if rng.below(3) == 0 {
            template.insert("labelSelector".into(), rng.pick(&selectors));
        }
        if rng.below(3) == 0 {
            let or = match rng.below(5) {
                0 => json!(null),
                1 => json!([]),
                2 => json!({}),
                _ => Value::Array((0..1 + rng.below(2)).map(|_| rng.pick(&selectors)).collect()),
            };
            template.insert("orLabelSelectors".into(), or);
        }
        for key in ["storageLocation", "ttl"] {
            if rng.below(3) == 0 {
                template.insert(key.into(), rng.pick(&strings));
            }
        }
        if rng.below(3) == 0 {
            template.insert("snapshotVolumes".into(), rng.pick(&bools));
        }
        if rng.below(4) == 0 {
            template.insert("includedResources".into(), rng.pick(&strings));
        }
        let template = match rng.below(12) {
            0 => None,
            1 => Some(json!(null)),
            2 => Some(json!("template")),
            // Serde reads a struct from an array too, field by field.
            3 => Some(Value::Array(template.into_iter().map(|(_, v)| v).collect())),
            _ => Some(Value::Object(template)),
        };
        let mut spec = serde_json::Map::new();
        if let Some(t) = template {
            spec.insert("template".into(), t);
        }
        if rng.below(2) == 0 {
            spec.insert("schedule".into(), rng.pick(&strings));
        }
        if rng.below(3) == 0 {
            spec.insert("paused".into(), rng.pick(&bools));
        }
        if rng.below(5) == 0 {
            spec.insert("unknownField".into(), rng.pick(&strings));
        }
        match rng.below(15) {
            0 => None,
            1 => Some(json!(null)),
            2 => Some(json!("spec")),
            3 => Some(Value::Array(spec.into_iter().map(|(_, v)| v).collect())),
            _ => Some(Value::Object(spec)),
        }
    }

    /// A Schedule `velero/s` with a [`random_spec`] (or none).
    fn random_schedule(rng: &mut Rng) -> DynamicObject {
        let mut object = serde_json::json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": "s", "namespace": "velero"}});
        if let Some(spec) = random_spec(rng) {
            object["spec"] = spec;
        }
        serde_json::from_value(object).unwrap()
    }

    /// `passes_over` may skip a Schedule only when the typed path would read it without a
    /// warning and then find that it does not cover the workload; for well-formed specs written
    /// as objects it must reach the same verdict.
    #[test]
    fn schedules_passed_over_are_exactly_those_the_typed_path_skips_silently() {
        let workloads = workloads();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut passed_over, mut vouched) = (0, 0);
        for _ in 0..20_000 {
            let object = random_schedule(&mut rng);
            let typed = read_spec::<VeleroScheduleSpec>(&object);
            for w in &workloads {
                let fast = passes_over(&object, w);
                let typed_skips = match &typed {
                    Ok(spec) => !covers(spec.template.as_ref().unwrap_or(&VeleroTemplate::default()), w),
                    Err(_) => false,
                };
                assert!(!fast || typed_skips, "passed over {:?} for {}", object.data, w.namespace());
                let object_shaped =
                    object.data["spec"].as_object().is_some_and(|s| s.get("template").is_some_and(Value::is_object));
                if object_shaped && typed.is_ok() {
                    vouched += 1;
                    assert_eq!(fast, typed_skips, "{:?} for {}", object.data, w.namespace());
                }
                passed_over += usize::from(fast);
            }
        }
        assert!(passed_over > 2_000 && vouched > 5_000, "{passed_over} passed over, {vouched} vouched for");
    }

    /// A Schedule filed under some namespaces only must be one the builder passes over (no
    /// document entry, no warning) for a workload in any other namespace.
    #[test]
    fn schedules_are_filed_only_under_namespaces_they_can_cover() {
        let workloads = workloads();
        let mut rng = Rng(0x6a09_e667_f3bc_c908);
        let (mut filed, mut kept_out) = (0, 0);
        for _ in 0..20_000 {
            let object = random_schedule(&mut rng);
            let Scope::Keys(keys) = schedule_scope(&object) else { continue };
            filed += 1;
            for w in &workloads {
                if !keys.contains(&namespace_key(w.namespace())) {
                    kept_out += 1;
                    assert!(
                        passes_over(&object, w),
                        "{:?} filed under {keys:?} but covers {}",
                        object.data,
                        w.namespace()
                    );
                }
            }
        }
        assert!(filed > 100 && kept_out > 300, "{filed} filed by namespace, {kept_out} kept out");
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

    /// `references_cluster` as it was written with allocated names, to compare against.
    fn references_cluster_by_copies(text: &str, name: &str, namespace: &str) -> bool {
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

    #[test]
    fn cluster_references_agree_with_the_copying_version() {
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        let pieces = [
            "pg", "pg-rw", "pg-ro", "pg-r", "pg-rx", "-rw", "-r", "pg-app", ".", ".crm", ".svc", ":", ":5432", "@",
            "//", "host=", "HOST=", "Host=", "hoST=", "ost=", " ", "=", "x", "É", "é", "日", "K", "\u{212a}",
        ];
        for _ in 0..50_000 {
            let text: String = (0..rng.below(7)).map(|_| rng.pick(&pieces)).collect();
            let name = rng.pick(&["pg", "p", "pg-r", "é"]);
            assert_eq!(
                references_cluster(&text, name, "crm"),
                references_cluster_by_copies(&text, name, "crm"),
                "{text:?} for {name:?}"
            );
        }
    }

    #[test]
    fn ascii_case_insensitive_suffixes() {
        assert!(ends_with_ignore_ascii_case("--db-HOST=", "host="));
        assert!(ends_with_ignore_ascii_case("host=", "host="));
        assert!(!ends_with_ignore_ascii_case("ost=", "host="));
        assert!(!ends_with_ignore_ascii_case("host", "host="));
        assert!(ends_with_ignore_ascii_case("日本host=", "host="));
        // The Kelvin sign lowercases to `k` only outside ASCII rules; `to_ascii_lowercase` keeps it.
        assert!(!ends_with_ignore_ascii_case("\u{212a}host", "khost"));
        assert!(!ends_with_ignore_ascii_case("é=", "e="));
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
