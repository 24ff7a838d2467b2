//! The telemetry HTTP endpoint: `/metrics`, `/healthz` and `/readyz` on one port.
//!
//! Plain HTTP/1.1 on hyper (already in the tree through kube's client), no router: three fixed
//! paths do not need one. The endpoint never touches the API server, so a scrape or a probe
//! cannot add load to the cluster.
//!
//! - `/healthz` answers 200 as long as the process serves requests (liveness: restarting a
//!   process that still answers would not help).
//! - `/readyz` answers 200 only while the shared [`Readiness`] says so, 503 with the reason
//!   otherwise (readiness: "caches not synced", "api server unreachable", ...).
//! - `/metrics` is [`Metrics::render`].

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::metrics::Metrics;

/// A client that does not finish sending its request headers in this time is disconnected, so
/// slow or stuck clients cannot hold connections open forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for requests in flight before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Back-off after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

const NOT_READY: &str = "not ready";

/// Whether the operator is ready to do its job, shared between whoever knows (the controller:
/// caches synced, API server reachable) and `/readyz`.
///
/// Clones share the same state. Starts not ready ("starting").
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug)]
struct ReadinessInner {
    ready: AtomicBool,
    reason: RwLock<Cow<'static, str>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ReadinessInner {
                ready: AtomicBool::new(false),
                reason: RwLock::new(Cow::Borrowed("starting")),
            }),
        }
    }

    /// Marks the operator ready or not. `set_ready(false)` reports a generic reason; prefer
    /// [`Readiness::set_not_ready`] when the reason is known.
    pub fn set_ready(&self, ready: bool) {
        if ready {
            self.inner.ready.store(true, Ordering::Release);
        } else {
            self.set_not_ready(NOT_READY);
        }
    }

    /// Marks the operator not ready and says why (shown in the `/readyz` body).
    pub fn set_not_ready(&self, reason: impl Into<Cow<'static, str>>) {
        // Reason first, flag second: a reader that sees "not ready" then finds the new reason.
        *self.inner.reason.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = reason.into();
        self.inner.ready.store(false, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// `Ok(())` when ready, else the reason.
    pub fn status(&self) -> Result<(), String> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(self.inner.reason.read().unwrap_or_else(|poisoned| poisoned.into_inner()).to_string())
        }
    }
}

/// Why the telemetry server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound, not yet serving, telemetry endpoint. Binding first and serving second lets the
/// caller fail fast on a taken port and learn the real port when it asked for port 0.
#[derive(Debug)]
pub struct TelemetryServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl TelemetryServer {
    /// Binds `addr`. Errors (port taken, no permission) are returned, never panicked on.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { listener, local_addr })
    }

    /// The address actually bound (with the real port when bound on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and gives requests in flight
    /// up to five seconds to finish.
    pub async fn run(self, metrics: Arc<Metrics>, readiness: Readiness, shutdown: impl Future) {
        let Self { listener, local_addr } = self;
        info!(addr = %local_addr, "serving /metrics, /healthz and /readyz");
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            warn!(error = %e, "telemetry endpoint: accept failed");
                            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                            continue;
                        }
                    };
                    let metrics = Arc::clone(&metrics);
                    let readiness = readiness.clone();
                    let service = service_fn(move |req: Request<Incoming>| {
                        let response = respond(&req, &metrics, &readiness);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            // Clients hanging up or timing out: normal, not worth a warning.
                            debug!(%peer, error = %e, "telemetry connection ended with an error");
                        }
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => debug!("telemetry endpoint stopped"),
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => debug!("telemetry endpoint stopped with requests still in flight"),
        }
    }
}

/// Binds `addr` and serves `/metrics`, `/healthz` and `/readyz` until `shutdown` completes.
///
/// Binding errors are returned; once bound, the server keeps going through per-connection
/// and accept errors (they are logged).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future,
) -> Result<(), ServeError> {
    TelemetryServer::bind(addr).await?.run(metrics, readiness, shutdown).await;
    Ok(())
}

fn respond<B>(req: &Request<B>, metrics: &Metrics, readiness: &Readiness) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".to_owned());
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.render());
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => match readiness.status() {
            Ok(()) => text(StatusCode::OK, "ok\n".to_owned()),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        let mut req = Request::new(());
        *req.uri_mut() = path.parse().unwrap();
        req
    }

    #[test]
    fn routes() {
        let metrics = Metrics::new().unwrap();
        let readiness = Readiness::new();
        assert_eq!(respond(&get("/healthz"), &metrics, &readiness).status(), StatusCode::OK);
        assert_eq!(respond(&get("/readyz"), &metrics, &readiness).status(), StatusCode::SERVICE_UNAVAILABLE);
        readiness.set_ready(true);
        assert_eq!(respond(&get("/readyz"), &metrics, &readiness).status(), StatusCode::OK);
        assert_eq!(respond(&get("/metrics"), &metrics, &readiness).status(), StatusCode::OK);
        assert_eq!(respond(&get("/nope"), &metrics, &readiness).status(), StatusCode::NOT_FOUND);
        let mut post = get("/metrics");
        *post.method_mut() = Method::POST;
        assert_eq!(respond(&post, &metrics, &readiness).status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn readiness_keeps_the_reason() {
        let readiness = Readiness::new();
        assert_eq!(readiness.status(), Err("starting".to_owned()));
        readiness.set_not_ready("caches not synced");
        assert_eq!(readiness.status(), Err("caches not synced".to_owned()));
        readiness.clone().set_ready(true);
        assert_eq!(readiness.status(), Ok(()));
        readiness.set_ready(false);
        assert_eq!(readiness.status(), Err(NOT_READY.to_owned()));
    }
}
