//! `crmrisk run`: wire the index, the controller, leader election and telemetry together, and
//! stop cleanly on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::sync::watch;

use crate::cluster::{ClusterIndex, spawn_discovery, spawn_watchers};
use crate::controller::{self, Context};
use crate::leader::{DEFAULT_LEASE_NAME, LeaderElector, default_identity};
use crate::telemetry::{self, LogFormat, Metrics, Readiness, TelemetryServer};

/// Options of `crmrisk run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, default_value = "0.0.0.0:8080", env = "CRMRISK_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "crm-risk-operator")]
    pub namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Identity in the Lease (default: pod name, or host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "CRMRISK_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info,kube=warn")]
    pub log_filter: String,
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run the operator until SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::logging::init(args.log_format, &args.log_filter)?;
    let client = Client::try_default().await.context("no usable kubeconfig or in-cluster configuration")?;
    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    let readiness = Readiness::new();
    readiness.set_not_ready("caches not synced");

    let server = TelemetryServer::bind(args.metrics_addr).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server_task = tokio::spawn(server.run(metrics.clone(), readiness.clone(), stopped(stop_rx.clone())));

    let index = ClusterIndex::new();
    let watchers = spawn_watchers(client.clone(), index.clone());
    let discovery = spawn_discovery(client.clone(), index.clone());

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    tracing::info!(%identity, namespace = %args.namespace, lease = %args.lease_name, "starting");
    let (leader, election) = LeaderElector::spawn(client.clone(), &args.namespace, &args.lease_name, identity);

    // Ready = caches synced and the API server answers.
    let readiness_task = {
        let client = client.clone();
        let index = index.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            loop {
                let reachable = tokio::time::timeout(Duration::from_secs(3), client.apiserver_version()).await;
                match reachable {
                    Ok(Ok(_)) if index.core_synced() => readiness.set_ready(true),
                    Ok(Ok(_)) => readiness.set_not_ready("caches not synced"),
                    _ => readiness.set_not_ready("api server unreachable"),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };

    let ctx = Context::new(client.clone(), index.clone(), metrics.clone(), leader.clone());
    let controller = tokio::spawn(controller::run(ctx, stopped(stop_rx.clone())));

    termination().await;
    tracing::info!("shutting down");
    readiness.set_not_ready("shutting down");
    // Stop writing first, then give up the Lease so a standby takes over at once.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    leader.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    for w in watchers {
        w.abort();
    }
    discovery.abort();
    readiness_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(6), server_task).await;
    tracing::info!("stopped");
    Ok(())
}
