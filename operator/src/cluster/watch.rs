//! Watch streams feeding the index. One watcher per kind; each keeps its store current,
//! buffers a (re)list and swaps it in at once, and reports what each change affects.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::{Affected, ClusterIndex, Key, KindStore, ReportDigest, affects};
use crate::api::{CRMRiskException, CRMRiskReport};
use crate::context::Workload;

/// Errors starting the watchers.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watch of {kind} failed: {source}")]
    Watch { kind: &'static str, source: watcher::Error },
}

/// Drop what the operator never reads, so 5,000 workloads fit in little memory.
fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

fn same_version<K: Resource>(a: &K, b: &K) -> bool {
    a.meta().resource_version.is_some() && a.meta().resource_version == b.meta().resource_version
}

fn key_of<K: Resource>(obj: &K) -> Key {
    (obj.meta().namespace.clone().unwrap_or_default(), obj.meta().name.clone().unwrap_or_default())
}

/// Run one watcher forever (the default backoff retries after API errors) feeding `store`.
/// `convert` turns an object into what is stored (or says why it cannot be used); `affects`
/// maps a change to the workloads to re-evaluate.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<K, V, C, A>(
    kind: &'static str,
    api: Api<K>,
    index: Arc<ClusterIndex>,
    store: impl Fn(&ClusterIndex) -> &KindStore<V> + Send + 'static,
    key: impl Fn(&K) -> Key + Send + 'static,
    convert: C,
    same: impl Fn(&V, &V) -> bool + Send + 'static,
    affects: A,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    V: Send + Sync + 'static,
    C: Fn(K) -> Result<V, String> + Send + 'static,
    A: Fn(&ClusterIndex, &Key, Option<&V>, Option<&V>) -> Affected + Send + 'static,
{
    let config = watcher::Config::default().any_semantic();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut buffer: Vec<(Key, V)> = Vec::new();
    let mut consecutive_errors = 0u32;
    loop {
        let event = match stream.try_next().await {
            Ok(Some(ev)) => {
                consecutive_errors = 0;
                ev
            }
            Ok(None) => break,
            Err(e) => {
                consecutive_errors += 1;
                // The backoff retries; keep the log readable while the API server is away.
                if consecutive_errors <= 3 || consecutive_errors.is_power_of_two() {
                    tracing::warn!(kind, error = %e, attempt = consecutive_errors, "watch failed, retrying");
                }
                continue;
            }
        };
        let accept = |obj: K, buffer_or_store: &mut dyn FnMut(Key, V)| {
            let k = key(&obj);
            let reference = ObjectReference {
                api_version: api_version_of(kind).map(str::to_owned),
                kind: Some(kind.to_owned()),
                namespace: obj.meta().namespace.clone(),
                name: obj.meta().name.clone(),
                uid: obj.meta().uid.clone(),
                ..Default::default()
            };
            match convert(obj) {
                Ok(v) => buffer_or_store(k, v),
                Err(reason) => {
                    tracing::warn!(kind, namespace = %k.0, name = ?reference.name, %reason, "skipping object the operator cannot read");
                    index.record_invalid(reference, reason);
                }
            }
        };
        match event {
            Event::Init => buffer.clear(),
            Event::InitApply(obj) => accept(obj, &mut |k, v| buffer.push((k, v))),
            Event::InitDone => {
                let diffs = store(&index).replace_all(std::mem::take(&mut buffer), &same);
                for d in diffs {
                    index.mark(affects(&index, &d.key, d.old.as_deref(), d.new.as_deref()));
                }
                tracing::debug!(kind, "listed");
                // An empty or unchanged list still tells the controller the store is ready.
                index.mark(Affected::Nothing);
            }
            Event::Apply(obj) => {
                let k = key(&obj);
                let mut applied = None;
                accept(obj, &mut |k, v| applied = Some(store(&index).apply(k, v)));
                match applied {
                    // Status-only updates (a Deployment's rollout status, a PVC binding) leave
                    // what the builder reads as it was: nothing to re-evaluate.
                    Some(d) if d.old.as_deref().zip(d.new.as_deref()).is_some_and(|(o, n)| same(o, n)) => {}
                    Some(d) => index.mark(affects(&index, &d.key, d.old.as_deref(), d.new.as_deref())),
                    // Unreadable now: whatever was stored before is no longer true.
                    None => {
                        let d = store(&index).delete(&k);
                        if d.old.is_some() {
                            index.mark(affects(&index, &d.key, d.old.as_deref(), None));
                        }
                    }
                }
            }
            Event::Delete(obj) => {
                let d = store(&index).delete(&key(&obj));
                index.mark(affects(&index, &d.key, d.old.as_deref(), None));
            }
        }
    }
}

/// apiVersion of the kinds whose objects can be rejected (for the Event's reference).
fn api_version_of(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => Some("apps/v1"),
        "CronJob" => Some("batch/v1"),
        "CRMRiskException" => Some("crmrisk.io/v1alpha1"),
        _ => None,
    }
}

fn plain<K: Resource>(mut obj: K) -> Result<K, String> {
    slim(&mut obj);
    Ok(obj)
}

fn by_namespace<V>(_: &ClusterIndex, key: &Key, _: Option<&V>, _: Option<&V>) -> Affected {
    affects::namespaced(&key.0)
}

fn workload_affects(_: &ClusterIndex, key: &Key, old: Option<&Workload>, new: Option<&Workload>) -> Affected {
    match old.or(new) {
        Some(w) => Affected::Workload(w.reference()),
        None => affects::namespaced(&key.0),
    }
}

/// Workloads are compared by content: the converted [`Workload`] holds no status and no
/// resourceVersion, so a status update compares equal and triggers nothing.
fn same_workload(a: &Workload, b: &Workload) -> bool {
    a == b
}

/// Convert a workload object, dropping what changes without changing the risk.
fn to_workload<K: Resource>(
    mut obj: K,
    convert: impl Fn(&K) -> Result<Workload, crate::context::ContextError>,
) -> Result<Workload, String> {
    slim(&mut obj);
    let mut w = convert(&obj).map_err(|e| e.to_string())?;
    w.metadata.resource_version = None;
    Ok(w)
}

/// Spawn a watcher task.
macro_rules! spawn_watch {
    ($handles:ident, $kind:literal, $api:expr, $index:ident, $field:ident, $key:expr, $convert:expr, $same:expr, $affects:expr) => {
        $handles.push(tokio::spawn(run(
            $kind,
            $api,
            $index.clone(),
            |i: &ClusterIndex| &i.$field,
            $key,
            $convert,
            $same,
            $affects,
        )));
    };
}

/// Start one watcher per core kind. The optional kinds (Velero, CloudNativePG, Istio) are
/// started by [`super::optional`] once discovery finds them.
pub fn spawn_watchers(client: Client, index: Arc<ClusterIndex>) -> Vec<JoinHandle<()>> {
    let mut h = Vec::new();
    let c = &client;
    spawn_watch!(
        h,
        "Deployment",
        Api::<Deployment>::all(c.clone()),
        index,
        deployments,
        key_of::<Deployment>,
        |d: Deployment| to_workload(d, Workload::from_deployment),
        same_workload,
        workload_affects
    );
    spawn_watch!(
        h,
        "StatefulSet",
        Api::<StatefulSet>::all(c.clone()),
        index,
        stateful_sets,
        key_of::<StatefulSet>,
        |d: StatefulSet| to_workload(d, Workload::from_stateful_set),
        same_workload,
        workload_affects
    );
    spawn_watch!(
        h,
        "DaemonSet",
        Api::<DaemonSet>::all(c.clone()),
        index,
        daemon_sets,
        key_of::<DaemonSet>,
        |d: DaemonSet| to_workload(d, Workload::from_daemon_set),
        same_workload,
        workload_affects
    );
    spawn_watch!(
        h,
        "CronJob",
        Api::<CronJob>::all(c.clone()),
        index,
        cron_jobs,
        key_of::<CronJob>,
        |d: CronJob| to_workload(d, Workload::from_cron_job),
        same_workload,
        workload_affects
    );
    spawn_watch!(
        h,
        "Namespace",
        Api::<Namespace>::all(c.clone()),
        index,
        namespaces,
        key_of::<Namespace>,
        plain::<Namespace>,
        same_version::<Namespace>,
        |_: &ClusterIndex, k: &Key, _: Option<&Namespace>, _: Option<&Namespace>| affects::namespaced(&k.1)
    );
    spawn_watch!(
        h,
        "ServiceAccount",
        Api::<ServiceAccount>::all(c.clone()),
        index,
        service_accounts,
        key_of::<ServiceAccount>,
        plain::<ServiceAccount>,
        same_version::<ServiceAccount>,
        |i: &ClusterIndex, k: &Key, _: Option<&ServiceAccount>, _: Option<&ServiceAccount>| affects::service_account(
            i, &k.0, &k.1
        )
    );
    spawn_watch!(
        h,
        "Role",
        Api::<Role>::all(c.clone()),
        index,
        roles,
        key_of::<Role>,
        plain::<Role>,
        same_version::<Role>,
        by_namespace
    );
    spawn_watch!(
        h,
        "RoleBinding",
        Api::<RoleBinding>::all(c.clone()),
        index,
        role_bindings,
        key_of::<RoleBinding>,
        plain::<RoleBinding>,
        same_version::<RoleBinding>,
        |i: &ClusterIndex, k: &Key, o: Option<&RoleBinding>, n: Option<&RoleBinding>| affects::role_binding(
            i, &k.0, o, n
        )
    );
    spawn_watch!(
        h,
        "ClusterRole",
        Api::<ClusterRole>::all(c.clone()),
        index,
        cluster_roles,
        key_of::<ClusterRole>,
        plain::<ClusterRole>,
        same_version::<ClusterRole>,
        |i: &ClusterIndex, _: &Key, o: Option<&ClusterRole>, n: Option<&ClusterRole>| affects::cluster_role(i, o, n)
    );
    spawn_watch!(
        h,
        "ClusterRoleBinding",
        Api::<ClusterRoleBinding>::all(c.clone()),
        index,
        cluster_role_bindings,
        key_of::<ClusterRoleBinding>,
        plain::<ClusterRoleBinding>,
        same_version::<ClusterRoleBinding>,
        |_: &ClusterIndex, _: &Key, o: Option<&ClusterRoleBinding>, n: Option<&ClusterRoleBinding>| {
            affects::cluster_role_binding(o, n)
        }
    );
    spawn_watch!(
        h,
        "PersistentVolumeClaim",
        Api::<PersistentVolumeClaim>::all(c.clone()),
        index,
        pvcs,
        key_of::<PersistentVolumeClaim>,
        plain::<PersistentVolumeClaim>,
        same_version::<PersistentVolumeClaim>,
        |i: &ClusterIndex, k: &Key, _: Option<&PersistentVolumeClaim>, _: Option<&PersistentVolumeClaim>| {
            affects::claim(i, &k.0, &k.1)
        }
    );
    spawn_watch!(
        h,
        "StorageClass",
        Api::<StorageClass>::all(c.clone()),
        index,
        storage_classes,
        key_of::<StorageClass>,
        plain::<StorageClass>,
        same_version::<StorageClass>,
        |_: &ClusterIndex, _: &Key, _: Option<&StorageClass>, _: Option<&StorageClass>| Affected::All
    );
    spawn_watch!(
        h,
        "Service",
        Api::<Service>::all(c.clone()),
        index,
        services,
        key_of::<Service>,
        plain::<Service>,
        same_version::<Service>,
        |i: &ClusterIndex, k: &Key, o: Option<&Service>, n: Option<&Service>| affects::service(
            i,
            &k.0,
            &[o.and_then(|s| s.spec.as_ref()?.selector.as_ref()), n.and_then(|s| s.spec.as_ref()?.selector.as_ref())]
        )
    );
    spawn_watch!(
        h,
        "Ingress",
        Api::<Ingress>::all(c.clone()),
        index,
        ingresses,
        key_of::<Ingress>,
        plain::<Ingress>,
        same_version::<Ingress>,
        by_namespace
    );
    spawn_watch!(
        h,
        "NetworkPolicy",
        Api::<NetworkPolicy>::all(c.clone()),
        index,
        network_policies,
        key_of::<NetworkPolicy>,
        plain::<NetworkPolicy>,
        same_version::<NetworkPolicy>,
        |i: &ClusterIndex, k: &Key, o: Option<&NetworkPolicy>, n: Option<&NetworkPolicy>| affects::pod_selector(
            i,
            &k.0,
            &[o, n]
                .into_iter()
                .flatten()
                .map(|p| p.spec.as_ref().and_then(|s| s.pod_selector.as_ref()))
                .collect::<Vec<_>>()
        )
    );
    spawn_watch!(
        h,
        "PodDisruptionBudget",
        Api::<PodDisruptionBudget>::all(c.clone()),
        index,
        pdbs,
        key_of::<PodDisruptionBudget>,
        plain::<PodDisruptionBudget>,
        same_version::<PodDisruptionBudget>,
        |i: &ClusterIndex, k: &Key, o: Option<&PodDisruptionBudget>, n: Option<&PodDisruptionBudget>| {
            affects::pod_selector(
                i,
                &k.0,
                &[o, n]
                    .into_iter()
                    .flatten()
                    .map(|p| p.spec.as_ref().and_then(|s| s.selector.as_ref()))
                    .collect::<Vec<_>>(),
            )
        }
    );
    spawn_watch!(
        h,
        "CRMRiskException",
        // Guarded: an exception this version cannot read (written by a newer schema, say) is
        // skipped with an Event instead of breaking the whole watch.
        Api::<DeserializeGuard<CRMRiskException>>::all(c.clone()),
        index,
        exceptions,
        key_of::<DeserializeGuard<CRMRiskException>>,
        |g: DeserializeGuard<CRMRiskException>| match g.0 {
            Ok(e) => plain(e),
            Err(invalid) => Err(format!("not a valid CRMRiskException: {}", invalid.error)),
        },
        same_version::<CRMRiskException>,
        by_namespace
    );
    spawn_watch!(
        h,
        "CRMRiskReport",
        Api::<CRMRiskReport>::all(c.clone()),
        index,
        reports,
        key_of::<CRMRiskReport>,
        |r: CRMRiskReport| Ok(ReportDigest::of(&r, crate::controller::MANAGED_BY)),
        |a: &ReportDigest, b: &ReportDigest| a.resource_version.is_some() && a.resource_version == b.resource_version,
        |_: &ClusterIndex, _: &Key, _: Option<&ReportDigest>, _: Option<&ReportDigest>| Affected::Nothing
    );
    h
}

/// How long the optional-kind discovery waits between looks.
pub(crate) const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
