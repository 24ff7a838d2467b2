//! The cluster index: the only place that knows the cluster. It keeps one watch-fed store per
//! kind, answers the context builder's lookups ([`ObjectSource`]), and turns every change into
//! the set of workloads it can affect ([`Affected`]) so that a change re-evaluates only those.

mod affects;
mod digest;
mod optional;
mod store;
mod watch;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::core::DynamicObject;
use tokio::sync::Notify;

pub use affects::Affected;
pub use digest::{ReportDigest, content_hash};
pub use optional::{OptionalKind, spawn_discovery};
use store::ReachCache;
pub use store::{Diff, Key, KindStore};
pub use watch::{WatchError, spawn_watchers};

use crate::api::CRMRiskException;
use crate::context::{self, BackupTools, ObjectSource, Workload};
use crate::model::{WorkloadKind, WorkloadRef};

/// Workloads and namespaces that changed since the controller last looked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty {
    /// Re-evaluate everything (a cluster-wide object changed, or a relist).
    pub all: bool,
    pub namespaces: BTreeSet<String>,
    pub workloads: BTreeSet<WorkloadRef>,
}

impl Dirty {
    pub fn add(&mut self, affected: Affected) {
        match affected {
            Affected::Nothing => {}
            Affected::All => self.all = true,
            Affected::Namespace(ns) => {
                self.namespaces.insert(ns);
            }
            Affected::Namespaces(nss) => self.namespaces.extend(nss),
            Affected::Workload(w) => {
                self.workloads.insert(w);
            }
            Affected::Workloads(ws) => self.workloads.extend(ws),
        }
    }

    pub fn merge(&mut self, other: &Dirty) {
        self.all |= other.all;
        self.namespaces.extend(other.namespaces.iter().cloned());
        self.workloads.extend(other.workloads.iter().cloned());
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.namespaces.is_empty() && self.workloads.is_empty()
    }
}

/// Watch-fed stores of everything the context builder reads, plus the operator's own objects.
#[derive(Default)]
pub struct ClusterIndex {
    /// One store per workload kind: each watcher swaps in its own list on a relist.
    pub deployments: KindStore<Workload>,
    pub stateful_sets: KindStore<Workload>,
    pub daemon_sets: KindStore<Workload>,
    pub cron_jobs: KindStore<Workload>,
    pub namespaces: KindStore<Namespace>,
    pub service_accounts: KindStore<ServiceAccount>,
    pub roles: KindStore<Role>,
    pub role_bindings: KindStore<RoleBinding>,
    pub cluster_roles: KindStore<ClusterRole>,
    pub cluster_role_bindings: KindStore<ClusterRoleBinding>,
    pub pvcs: KindStore<PersistentVolumeClaim>,
    pub storage_classes: KindStore<StorageClass>,
    pub services: KindStore<Service>,
    pub ingresses: KindStore<Ingress>,
    pub network_policies: KindStore<NetworkPolicy>,
    pub pdbs: KindStore<PodDisruptionBudget>,
    pub exceptions: KindStore<CRMRiskException>,
    pub reports: KindStore<ReportDigest>,
    pub velero_schedules: KindStore<DynamicObject>,
    /// `cluster_role_bindings` and `velero_schedules` filed by the ServiceAccounts and
    /// namespaces they can concern, so a workload's context does not test every one.
    binding_reach: ReachCache<ClusterRoleBinding>,
    schedule_reach: ReachCache<DynamicObject>,
    pub velero_locations: KindStore<DynamicObject>,
    pub cnpg_clusters: KindStore<DynamicObject>,
    pub cnpg_scheduled_backups: KindStore<DynamicObject>,
    pub peer_authentications: KindStore<DynamicObject>,
    pub policy_reports: KindStore<DynamicObject>,
    pub open_reports: KindStore<DynamicObject>,
    velero_installed: AtomicBool,
    policy_reports_installed: AtomicBool,
    open_reports_installed: AtomicBool,
    /// The first discovery pass for the optional kinds has finished.
    discovered: AtomicBool,
    cnpg_installed: AtomicBool,
    pending: Mutex<Dirty>,
    changed: Notify,
    /// Objects that could not be read (e.g. a workload whose spec the builder rejects), with why.
    invalid: Mutex<Vec<(ObjectReference, String)>>,
}

impl ClusterIndex {
    pub fn new() -> Arc<ClusterIndex> {
        Arc::new(ClusterIndex::default())
    }

    /// Record what a change affects and wake the controller.
    pub fn mark(&self, affected: Affected) {
        if matches!(affected, Affected::Nothing) {
            return;
        }
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).add(affected);
        self.changed.notify_one();
    }

    /// Wait until something changed, then take it.
    pub async fn next_dirty(&self) -> Dirty {
        loop {
            {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !pending.is_empty() {
                    return std::mem::take(&mut *pending);
                }
            }
            self.changed.notified().await;
        }
    }

    pub fn set_installed(&self, kind: OptionalKind, installed: bool) {
        match kind {
            OptionalKind::VeleroSchedule => self.velero_installed.store(installed, Ordering::Release),
            OptionalKind::CnpgCluster => self.cnpg_installed.store(installed, Ordering::Release),
            OptionalKind::PolicyReport => self.policy_reports_installed.store(installed, Ordering::Release),
            OptionalKind::OpenReport => self.open_reports_installed.store(installed, Ordering::Release),
            _ => {}
        }
    }

    /// Which dashboard report formats are installed (wgpolicyk8s.io, openreports.io).
    pub fn dashboard_formats(&self) -> (bool, bool) {
        (self.policy_reports_installed.load(Ordering::Acquire), self.open_reports_installed.load(Ordering::Acquire))
    }

    /// Called by discovery after its first pass, so evaluations wait for the optional kinds
    /// instead of reporting "no backup tool" for a moment.
    pub fn set_discovered(&self) {
        self.discovered.store(true, Ordering::Release);
        self.changed.notify_one();
    }

    /// Remember an object that could not be used, for Events and logs.
    pub fn record_invalid(&self, object: ObjectReference, reason: String) {
        let mut invalid = self.invalid.lock().unwrap_or_else(|e| e.into_inner());
        invalid.push((object, reason));
    }

    /// Take the objects recorded as invalid since the last call.
    pub fn take_invalid(&self) -> Vec<(ObjectReference, String)> {
        std::mem::take(&mut *self.invalid.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn workload_store(&self, kind: WorkloadKind) -> &KindStore<Workload> {
        match kind {
            WorkloadKind::Deployment => &self.deployments,
            WorkloadKind::StatefulSet => &self.stateful_sets,
            WorkloadKind::DaemonSet => &self.daemon_sets,
            WorkloadKind::CronJob => &self.cron_jobs,
        }
    }

    pub fn workload(&self, r: &WorkloadRef) -> Option<Arc<Workload>> {
        self.workload_store(r.kind).get(&r.namespace, &r.name)
    }

    /// Every workload of every kind.
    pub fn all_workloads(&self) -> Vec<Arc<Workload>> {
        WorkloadKind::ALL.iter().flat_map(|k| self.workload_store(*k).list()).collect()
    }

    /// Every workload in the given namespaces, or all.
    pub fn workloads_in(&self, dirty: &Dirty) -> Vec<Arc<Workload>> {
        if dirty.all {
            return self.all_workloads();
        }
        let mut out: Vec<Arc<Workload>> = Vec::new();
        for ns in &dirty.namespaces {
            for k in WorkloadKind::ALL {
                out.extend(self.workload_store(k).list_namespace(ns));
            }
        }
        for w in &dirty.workloads {
            if dirty.namespaces.contains(&w.namespace) {
                continue;
            }
            if let Some(found) = self.workload(w) {
                out.push(found);
            }
        }
        out
    }

    /// True when the stores every evaluation needs have been listed once.
    pub fn core_synced(&self) -> bool {
        let tools = self.backup_tools();
        self.discovered.load(Ordering::Acquire)
            && (!tools.velero || (self.velero_schedules.is_synced() && self.velero_locations.is_synced()))
            && (!tools.cnpg || self.cnpg_clusters.is_synced())
            && WorkloadKind::ALL.iter().all(|k| self.workload_store(*k).is_synced())
            && self.namespaces.is_synced()
            && self.service_accounts.is_synced()
            && self.role_bindings.is_synced()
            && self.cluster_role_bindings.is_synced()
            && self.roles.is_synced()
            && self.cluster_roles.is_synced()
            && self.pvcs.is_synced()
            && self.storage_classes.is_synced()
            && self.services.is_synced()
            && self.ingresses.is_synced()
            && self.network_policies.is_synced()
            && self.pdbs.is_synced()
            && self.exceptions.is_synced()
            && self.reports.is_synced()
    }
}

impl ObjectSource for ClusterIndex {
    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get("", name)
    }
    fn service_account(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccount>> {
        self.service_accounts.get(namespace, name)
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>> {
        self.role_bindings.list_namespace(namespace)
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>> {
        self.cluster_role_bindings.list()
    }
    fn cluster_role_bindings_for(&self, namespace: &str, name: &str) -> Vec<Arc<ClusterRoleBinding>> {
        let reach = self.binding_reach.get(&self.cluster_role_bindings, context::cluster_binding_scope);
        let [account, ns] = context::service_account_keys(namespace, name);
        reach.candidates(&[&account, &ns])
    }
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>> {
        self.roles.get(namespace, name)
    }
    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>> {
        self.cluster_roles.get("", name)
    }
    fn cluster_roles(&self) -> Vec<Arc<ClusterRole>> {
        self.cluster_roles.list()
    }
    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.get(namespace, name)
    }
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.storage_classes.get("", name)
    }
    fn storage_classes(&self) -> Vec<Arc<StorageClass>> {
        self.storage_classes.list()
    }
    fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.services.list_namespace(namespace)
    }
    fn ingresses(&self, namespace: &str) -> Vec<Arc<Ingress>> {
        self.ingresses.list_namespace(namespace)
    }
    fn network_policies(&self, namespace: &str) -> Vec<Arc<NetworkPolicy>> {
        self.network_policies.list_namespace(namespace)
    }
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        self.pdbs.list_namespace(namespace)
    }
    fn velero_schedules(&self) -> Vec<Arc<DynamicObject>> {
        self.velero_schedules.list()
    }
    fn velero_schedules_for(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        let reach = self.schedule_reach.get(&self.velero_schedules, context::schedule_scope);
        reach.candidates(&[&context::namespace_key(namespace)])
    }
    fn velero_backup_storage_location(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.velero_locations.get(namespace, name)
    }
    fn cnpg_clusters(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.cnpg_clusters.list_namespace(namespace)
    }
    fn cnpg_scheduled_backups(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.cnpg_scheduled_backups.list_namespace(namespace)
    }
    fn istio_peer_authentications(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.peer_authentications.list_namespace(namespace)
    }
    fn backup_tools(&self) -> BackupTools {
        BackupTools {
            velero: self.velero_installed.load(Ordering::Acquire),
            cnpg: self.cnpg_installed.load(Ordering::Acquire),
        }
    }
}
