//! Optional kinds (Velero, CloudNativePG, Istio): their CRDs may be missing. Discovery looks
//! for them at start and every few seconds after, starts a watcher when one appears (no
//! restart needed), and stops it and forgets its objects when the CRD goes away. Until Velero
//! or CNPG is found, the backup rules report "no backup tool found" instead of failing.

use std::collections::HashMap;
use std::sync::Arc;

use kube::core::{DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use super::watch::{DISCOVERY_INTERVAL, run};
use super::{Affected, ClusterIndex, Key, KindStore, affects};

/// The optional kinds the context builder can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionalKind {
    VeleroSchedule,
    VeleroBackupStorageLocation,
    CnpgCluster,
    CnpgScheduledBackup,
    IstioPeerAuthentication,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport (Kyverno's format, read by Policy Reporter).
    PolicyReport,
    /// `openreports.io/v1alpha1` Report, the successor format.
    OpenReport,
}

impl OptionalKind {
    pub const ALL: [OptionalKind; 7] = [
        OptionalKind::VeleroSchedule,
        OptionalKind::VeleroBackupStorageLocation,
        OptionalKind::CnpgCluster,
        OptionalKind::CnpgScheduledBackup,
        OptionalKind::IstioPeerAuthentication,
        OptionalKind::PolicyReport,
        OptionalKind::OpenReport,
    ];

    pub fn gvk(self) -> GroupVersionKind {
        let (g, v, k) = match self {
            OptionalKind::VeleroSchedule => ("velero.io", "v1", "Schedule"),
            OptionalKind::VeleroBackupStorageLocation => ("velero.io", "v1", "BackupStorageLocation"),
            OptionalKind::CnpgCluster => ("postgresql.cnpg.io", "v1", "Cluster"),
            OptionalKind::CnpgScheduledBackup => ("postgresql.cnpg.io", "v1", "ScheduledBackup"),
            OptionalKind::IstioPeerAuthentication => ("security.istio.io", "v1", "PeerAuthentication"),
            OptionalKind::PolicyReport => ("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
            OptionalKind::OpenReport => ("openreports.io", "v1alpha1", "Report"),
        };
        GroupVersionKind::gvk(g, v, k)
    }

    fn name(self) -> &'static str {
        match self {
            OptionalKind::VeleroSchedule => "velero Schedule",
            OptionalKind::VeleroBackupStorageLocation => "velero BackupStorageLocation",
            OptionalKind::CnpgCluster => "CNPG Cluster",
            OptionalKind::CnpgScheduledBackup => "CNPG ScheduledBackup",
            OptionalKind::IstioPeerAuthentication => "Istio PeerAuthentication",
            OptionalKind::PolicyReport => "wgpolicyk8s.io PolicyReport",
            OptionalKind::OpenReport => "openreports.io Report",
        }
    }

    fn store(self, index: &ClusterIndex) -> &KindStore<DynamicObject> {
        match self {
            OptionalKind::VeleroSchedule => &index.velero_schedules,
            OptionalKind::VeleroBackupStorageLocation => &index.velero_locations,
            OptionalKind::CnpgCluster => &index.cnpg_clusters,
            OptionalKind::CnpgScheduledBackup => &index.cnpg_scheduled_backups,
            OptionalKind::IstioPeerAuthentication => &index.peer_authentications,
            OptionalKind::PolicyReport => &index.policy_reports,
            OptionalKind::OpenReport => &index.open_reports,
        }
    }
}

fn affects_of(kind: OptionalKind, key: &Key, old: Option<&DynamicObject>, new: Option<&DynamicObject>) -> Affected {
    match kind {
        OptionalKind::VeleroSchedule => affects::velero_schedule(old, new),
        OptionalKind::VeleroBackupStorageLocation => Affected::All,
        OptionalKind::CnpgCluster | OptionalKind::CnpgScheduledBackup => affects::namespaced(&key.0),
        OptionalKind::IstioPeerAuthentication => affects::peer_authentication(&key.0),
        // Our own output: reading it back never changes an evaluation.
        OptionalKind::PolicyReport | OptionalKind::OpenReport => Affected::Nothing,
    }
}

fn start(
    client: &Client,
    index: &Arc<ClusterIndex>,
    kind: OptionalKind,
    ar: &kube::core::ApiResource,
) -> JoinHandle<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    tokio::spawn(run(
        kind.name(),
        api,
        index.clone(),
        move |i: &ClusterIndex| kind.store(i),
        |o: &DynamicObject| {
            (o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone().unwrap_or_default())
        },
        |mut o: DynamicObject| {
            o.metadata.managed_fields = None;
            Ok(o)
        },
        |a: &DynamicObject, b: &DynamicObject| {
            a.metadata.resource_version.is_some() && a.metadata.resource_version == b.metadata.resource_version
        },
        move |_: &ClusterIndex, k: &Key, o: Option<&DynamicObject>, n: Option<&DynamicObject>| {
            affects_of(kind, k, o, n)
        },
    ))
}

/// Look for the optional kinds now and every [`DISCOVERY_INTERVAL`].
pub fn spawn_discovery(client: Client, index: Arc<ClusterIndex>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<OptionalKind, JoinHandle<()>> = HashMap::new();
        loop {
            for kind in OptionalKind::ALL {
                match kube::discovery::pinned_kind(&client, &kind.gvk()).await {
                    Ok((ar, _caps)) => {
                        if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(kind) {
                            tracing::info!(kind = kind.name(), "found, watching it");
                            slot.insert(start(&client, &index, kind, &ar));
                            index.set_installed(kind, true);
                            index.mark(Affected::All);
                        }
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        if let Some(handle) = running.remove(&kind) {
                            tracing::info!(kind = kind.name(), "CRD removed, no longer watching it");
                            handle.abort();
                            kind.store(&index).replace_all(Vec::new(), |_, _| true);
                            index.set_installed(kind, false);
                            index.mark(Affected::All);
                        }
                    }
                    Err(e) => {
                        // API server away or discovery failing: keep what runs, look again later.
                        tracing::debug!(kind = kind.name(), error = %e, "discovery failed");
                    }
                }
            }
            index.set_discovered();
            tokio::time::sleep(DISCOVERY_INTERVAL).await;
        }
    })
}
