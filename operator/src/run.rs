//! `crmrisk run`: wire the index, the controller, leader election and telemetry together, and
//! stop cleanly on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{ClusterIndex, spawn_discovery, spawn_watchers};
use crate::controller::{self, Context};
use crate::leader::{DEFAULT_LEASE_NAME, LeaderElector, LeaderHandle, default_identity};
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

/// A running operator (in this process): what tests and `crmrisk run` hold on to.
pub struct Running {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub leader: LeaderHandle,
    /// The address the telemetry endpoint is bound to (useful with port 0).
    pub metrics_addr: SocketAddr,
    stop_tx: watch::Sender<bool>,
    tasks: Tasks,
}

struct Tasks {
    server: JoinHandle<()>,
    controller: JoinHandle<()>,
    election: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

/// Start the operator with `client`. Returns once everything is spawned.
pub async fn start(args: &RunArgs, client: Client) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    let readiness = Readiness::new();
    readiness.set_not_ready("caches not synced");

    let server = TelemetryServer::bind(args.metrics_addr).await?;
    let metrics_addr = server.local_addr();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server_task = tokio::spawn(server.run(metrics.clone(), readiness.clone(), stopped(stop_rx.clone())));

    let index = ClusterIndex::new();
    let mut background = spawn_watchers(client.clone(), index.clone());
    background.push(spawn_discovery(client.clone(), index.clone()));

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    tracing::info!(%identity, namespace = %args.namespace, lease = %args.lease_name, "starting");
    let (leader, election) = LeaderElector::spawn(client.clone(), &args.namespace, &args.lease_name, identity);

    // Ready = caches synced and the API server answers.
    background.push({
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
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });

    let ctx = Context::new(client.clone(), index.clone(), metrics.clone(), leader.clone());
    let controller = tokio::spawn(controller::run(ctx, stopped(stop_rx.clone())));
    Ok(Running {
        metrics,
        readiness,
        leader,
        metrics_addr,
        stop_tx,
        tasks: Tasks { server: server_task, controller, election, background },
    })
}

impl Running {
    /// Graceful stop: no more writes, then release the Lease so a standby takes over at once.
    pub async fn stop(self) {
        tracing::info!("shutting down");
        self.readiness.set_not_ready("shutting down");
        let _ = self.stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tasks.controller).await;
        self.leader.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.election).await;
        for t in self.tasks.background {
            t.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(6), self.tasks.server).await;
        tracing::info!("stopped");
    }
}

/// Run the operator until SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::logging::init(args.log_format, &args.log_filter)?;
    let client = Client::try_default().await.context("no usable kubeconfig or in-cluster configuration")?;
    let running = start(&args, client).await?;
    termination().await;
    running.stop().await;
    Ok(())
}
