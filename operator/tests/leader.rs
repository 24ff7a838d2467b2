//! Leader election against a small in-process fake of the Lease API: enough of the API server
//! (GET, POST, PUT with resourceVersion conflicts) to check the election's behaviour, plus
//! switches to make it fail or hang like an unreachable API server. The real two-replica test
//! runs against kube-apiserver in the end-to-end suite.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmrisk::leader::{LeaderConfig, LeaderElector, LeaderHandle};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

const NS: &str = "crm-risk-system";
const LEASE: &str = "crm-risk-operator-leader";

/// Short timings so the tests take seconds: 2 s lease, 1 s renew deadline, 200 ms retry.
fn config() -> LeaderConfig {
    LeaderConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    /// Every request fails with 503.
    Failing,
    /// Requests never get an answer.
    Hanging,
}

#[derive(Debug)]
struct FakeState {
    lease: Option<Value>,
    resource_version: u64,
    mode: Mode,
}

#[derive(Clone)]
struct FakeApi {
    state: Arc<Mutex<FakeState>>,
    addr: SocketAddr,
}

impl FakeApi {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState { lease: None, resource_version: 0, mode: Mode::Up }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&state), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        FakeApi { state, addr }
    }

    fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn spec(&self) -> Value {
        self.state.lock().unwrap().lease.as_ref().map(|l| l["spec"].clone()).unwrap_or(Value::Null)
    }

    fn holder(&self) -> Option<String> {
        self.spec()["holderIdentity"].as_str().map(str::to_owned)
    }

    fn spawn(&self, identity: &str) -> (LeaderHandle, JoinHandle<()>) {
        self.spawn_with(identity, config())
    }

    fn spawn_with(&self, identity: &str, config: LeaderConfig) -> (LeaderHandle, JoinHandle<()>) {
        LeaderElector::spawn_with_config(self.client(), NS, LEASE, identity, config).unwrap()
    }
}

fn status(code: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code.as_u16(),
    });
    object(code, &body)
}

fn object(code: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response
}

async fn handle(state: Arc<Mutex<FakeState>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mode = state.lock().unwrap().mode;
    match mode {
        Mode::Up => {}
        Mode::Failing => return Ok(status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")),
        Mode::Hanging => std::future::pending::<()>().await,
    }
    let collection = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases");
    let item = format!("{collection}/{LEASE}");
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut state = state.lock().unwrap();
    let response = match (method, path.as_str()) {
        (Method::GET, p) if p == item => match &state.lease {
            Some(lease) => object(StatusCode::OK, lease),
            None => status(StatusCode::NOT_FOUND, "NotFound"),
        },
        (Method::POST, p) if p == collection => {
            if state.lease.is_some() {
                status(StatusCode::CONFLICT, "AlreadyExists")
            } else {
                let mut lease: Value = serde_json::from_slice(&body).unwrap();
                state.resource_version += 1;
                lease["metadata"]["namespace"] = json!(NS);
                lease["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
                state.lease = Some(lease.clone());
                object(StatusCode::CREATED, &lease)
            }
        }
        (Method::PUT, p) if p == item => {
            let mut lease: Value = serde_json::from_slice(&body).unwrap();
            let current = state.resource_version.to_string();
            if state.lease.is_none() {
                status(StatusCode::NOT_FOUND, "NotFound")
            } else if lease["metadata"]["resourceVersion"].as_str() != Some(current.as_str()) {
                status(StatusCode::CONFLICT, "Conflict")
            } else {
                state.resource_version += 1;
                lease["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
                state.lease = Some(lease.clone());
                object(StatusCode::OK, &lease)
            }
        }
        _ => status(StatusCode::NOT_FOUND, "NotFound"),
    };
    Ok(response)
}

async fn lead_within(handle: &LeaderHandle, limit: Duration) -> bool {
    let mut handle = handle.clone();
    timeout(limit, handle.wait_until_leader()).await.unwrap_or(false)
}

async fn follow_within(handle: &LeaderHandle, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while handle.is_leader() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn single_replica_leads_and_releases_on_shutdown() {
    let api = FakeApi::start().await;
    let (a, task) = api.spawn("a");
    assert!(lead_within(&a, Duration::from_secs(5)).await, "never became leader");
    assert_eq!(api.holder().as_deref(), Some("a"));
    assert_eq!(api.spec()["leaseDurationSeconds"], json!(2));

    // Renewals keep moving renewTime while leading.
    let renewed = api.spec()["renewTime"].clone();
    sleep(Duration::from_millis(700)).await;
    assert!(a.is_leader());
    assert_ne!(api.spec()["renewTime"], renewed, "lease not renewed");

    a.shutdown();
    assert!(!a.is_leader(), "shutdown must step down at once");
    timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    assert_eq!(api.holder(), None, "lease not released: {}", api.spec());
}

#[tokio::test]
async fn one_leader_at_a_time_and_fast_handover() {
    // A lease far longer than the test: a standby that takes over at all took a released lease,
    // it did not wait for it to expire (no sub-second timing to assert on a shared machine).
    let long_lease = LeaderConfig {
        lease_duration: Duration::from_secs(60),
        renew_deadline: Duration::from_secs(40),
        retry_period: Duration::from_millis(200),
    };
    let api = FakeApi::start().await;
    let (a, task_a) = api.spawn_with("a", long_lease);
    let (b, task_b) = api.spawn_with("b", long_lease);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.is_leader() && !b.is_leader() {
        assert!(Instant::now() < deadline, "nobody became leader");
        sleep(Duration::from_millis(10)).await;
    }
    // Watch both for a while: never two leaders, and leadership stays put.
    let first_is_a = a.is_leader();
    for _ in 0..100 {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders");
        assert_eq!(a.is_leader(), first_is_a, "leadership moved without reason");
        sleep(Duration::from_millis(15)).await;
    }
    let (leader, leader_task, standby, standby_name) =
        if first_is_a { (a, task_a, b, "b") } else { (b, task_b, a, "a") };
    assert_eq!(api.holder().as_deref(), Some(if first_is_a { "a" } else { "b" }));

    // A released lease is taken on the standby's next retry, long before the lease could expire.
    leader.shutdown();
    timeout(Duration::from_secs(5), leader_task).await.unwrap().unwrap();
    assert!(lead_within(&standby, Duration::from_secs(20)).await, "standby did not take the released lease");
    assert_eq!(api.holder().as_deref(), Some(standby_name));
    assert_eq!(api.spec()["leaseTransitions"], json!(1));
    standby.shutdown();
}

#[tokio::test]
async fn leader_that_cannot_renew_steps_down_before_the_lease_expires() {
    for mode in [Mode::Failing, Mode::Hanging] {
        let api = FakeApi::start().await;
        let (a, task) = api.spawn("a");
        assert!(lead_within(&a, Duration::from_secs(5)).await);

        let outage = Instant::now();
        api.set_mode(mode);
        // The last renewal was at most one retry period before the outage; the leader must stop
        // within the renew deadline (1 s) from it, before the lease (2 s) lets anyone else in.
        assert!(follow_within(&a, config().lease_duration).await, "{mode:?}: still leading when the lease expired");
        assert!(outage.elapsed() < config().lease_duration, "{mode:?}: stepped down too late");

        // Once the API server is back, the same replica leads again (nobody else took the lease).
        api.set_mode(Mode::Up);
        assert!(lead_within(&a, Duration::from_secs(20)).await, "{mode:?}: did not recover");
        a.shutdown();
        timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_only_after_its_lease_expires() {
    let api = FakeApi::start().await;
    let (a, task_a) = api.spawn("a");
    assert!(lead_within(&a, Duration::from_secs(5)).await);
    // Crash: the task dies without releasing. Its handle must not claim leadership any more.
    task_a.abort();
    let _ = task_a.await;
    assert!(!a.is_leader(), "a dead elector still claims leadership");
    assert_eq!(api.holder().as_deref(), Some("a"));

    let started = Instant::now();
    let (b, task_b) = api.spawn("b");
    // b first sees a's lease now and must wait a full lease duration (2 s) from then.
    assert!(!lead_within(&b, Duration::from_millis(1500)).await, "took a lease that had not expired");
    assert!(lead_within(&b, Duration::from_secs(5)).await, "never took over the expired lease");
    assert!(started.elapsed() >= config().lease_duration);
    assert_eq!(api.holder().as_deref(), Some("b"));
    b.shutdown();
    timeout(Duration::from_secs(5), task_b).await.unwrap().unwrap();
}

#[tokio::test]
async fn changed_reports_transitions_and_the_end() {
    let api = FakeApi::start().await;
    let (mut a, task) = api.spawn("a");
    assert_eq!(timeout(Duration::from_secs(5), a.changed()).await.unwrap(), Some(true));
    a.shutdown();
    timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    // Stepping down was announced, then the election ended.
    assert_eq!(a.changed().await, Some(false));
    assert_eq!(a.changed().await, None);
}

#[test]
fn invalid_timing_is_rejected() {
    let bad = LeaderConfig { renew_deadline: Duration::from_secs(20), ..LeaderConfig::default() };
    assert!(bad.validate().is_err());
}
