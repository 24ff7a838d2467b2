//! Metrics, the telemetry HTTP endpoint and logging setup, without a cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crmrisk::model::{Band, Category, Control, WorkloadKind, WorkloadRef};
use crmrisk::risk::{ScoredFinding, verdict};
use crmrisk::telemetry::{LogFormat, Metrics, PolicyMetricsSnapshot, Readiness, TelemetryServer, WriteKind, logging};

fn workload(namespace: &str, name: &str) -> WorkloadRef {
    WorkloadRef { kind: WorkloadKind::Deployment, namespace: namespace.into(), name: name.into() }
}

fn finding(category: Category, score: u8, accepted: bool) -> ScoredFinding {
    ScoredFinding {
        id: "TST-001".into(),
        title: "test".into(),
        category,
        control: Control::Prevention,
        likelihood: 1,
        impact: score,
        score,
        band: Band::of(score),
        accepted,
        accepted_by: accepted.then(|| "crm/accept".to_owned()),
        message: "m".into(),
        remediation: "".into(),
        evidence: vec![],
    }
}

fn snapshot(workloads: &[(&WorkloadRef, Vec<ScoredFinding>)], tolerance: u8) -> PolicyMetricsSnapshot {
    let mut snapshot = PolicyMetricsSnapshot::default();
    for (w, findings) in workloads {
        snapshot.add_workload(w, findings, &verdict(findings, tolerance));
    }
    snapshot
}

/// The value of the one series whose name and labels contain all of `needles`.
fn value(rendered: &str, needles: &[&str]) -> Option<f64> {
    let lines: Vec<&str> =
        rendered.lines().filter(|l| !l.starts_with('#') && needles.iter().all(|n| l.contains(n))).collect();
    assert!(lines.len() <= 1, "{needles:?} matches several series: {lines:?}");
    lines.first()?.rsplit(' ').next()?.parse().ok()
}

#[test]
fn render_contains_every_metric() {
    let metrics = Metrics::new().unwrap();
    let crm = workload("crm", "crm-api");
    metrics.record_policy("baseline", &snapshot(&[(&crm, vec![finding(Category::Backups, 20, false)])], 12));
    metrics.set_policy_ready("baseline", true);
    metrics.observe_reconcile("baseline", Duration::from_millis(30));
    metrics.record_reconcile_error("baseline", "write");
    metrics.observe_evaluation(Duration::from_micros(80));
    metrics.record_api_write(WriteKind::Status);
    metrics.set_leader(true);
    let rendered = metrics.render();
    for name in [
        "crmrisk_workload_risk_score",
        "crmrisk_findings",
        "crmrisk_findings_accepted",
        "crmrisk_workloads_above_tolerance",
        "crmrisk_workloads_matched",
        "crmrisk_policy_ready",
        "crmrisk_reconcile_total",
        "crmrisk_reconcile_errors_total",
        "crmrisk_reconcile_duration_seconds_bucket",
        "crmrisk_evaluation_duration_seconds_bucket",
        "crmrisk_api_writes_total",
        "crmrisk_audit_last_run_timestamp_seconds",
        "crmrisk_leader",
    ] {
        assert!(rendered.contains(&format!("# TYPE {name}")) || rendered.contains(name), "{name} missing:\n{rendered}");
    }
    assert_eq!(
        value(
            &rendered,
            &["crmrisk_workload_risk_score{", "namespace=\"crm\"", "kind=\"Deployment\"", "workload=\"crm-api\""]
        ),
        Some(20.0)
    );
    assert_eq!(
        value(&rendered, &["crmrisk_findings{", "category=\"backups\"", "band=\"critical\"", "policy=\"baseline\""]),
        Some(1.0)
    );
    assert_eq!(value(&rendered, &["crmrisk_workloads_above_tolerance{"]), Some(1.0));
    assert_eq!(value(&rendered, &["crmrisk_workloads_matched{"]), Some(1.0));
    assert_eq!(value(&rendered, &["crmrisk_reconcile_errors_total{", "reason=\"write\""]), Some(1.0));
    // The evaluation histogram starts at 50 µs.
    assert!(rendered.contains("crmrisk_evaluation_duration_seconds_bucket{le=\"0.00005\"}"), "{rendered}");
    // Write counters exist from the start, so a quiet resync reads as "still 0".
    assert_eq!(value(&rendered, &["crmrisk_api_writes_total{", "kind=\"report\""]), Some(0.0));
    assert_eq!(metrics.api_writes(WriteKind::Status), 1);
    let stamp = value(&rendered, &["crmrisk_audit_last_run_timestamp_seconds{"]).unwrap();
    assert!(stamp > 1.7e9, "{stamp}");
}

#[test]
fn accepted_findings_are_counted_apart() {
    let metrics = Metrics::new().unwrap();
    let crm = workload("crm", "crm-api");
    let findings = vec![finding(Category::Encryption, 16, true), finding(Category::Encryption, 4, false)];
    metrics.record_policy("baseline", &snapshot(&[(&crm, findings)], 12));
    let rendered = metrics.render();
    assert_eq!(value(&rendered, &["crmrisk_findings{", "category=\"encryption\"", "band=\"high\""]), Some(0.0));
    assert_eq!(value(&rendered, &["crmrisk_findings{", "category=\"encryption\"", "band=\"low\""]), Some(1.0));
    assert_eq!(value(&rendered, &["crmrisk_findings_accepted{", "category=\"encryption\""]), Some(1.0));
    // The accepted finding is above tolerance but accepted: the workload is within tolerance.
    assert_eq!(value(&rendered, &["crmrisk_workloads_above_tolerance{"]), Some(0.0));
    // The workload score still shows the accepted risk, as status and reports do.
    assert_eq!(value(&rendered, &["crmrisk_workload_risk_score{"]), Some(16.0));
}

#[test]
fn series_of_vanished_workloads_are_removed() {
    let metrics = Metrics::new().unwrap();
    let (a, b) = (workload("crm", "crm-api"), workload("crm", "crm-worker"));
    let custom = vec![finding(Category::Custom, 6, false)];
    metrics.record_policy("baseline", &snapshot(&[(&a, vec![]), (&b, custom)], 12));
    let rendered = metrics.render();
    assert!(rendered.contains("workload=\"crm-worker\""));
    assert_eq!(value(&rendered, &["crmrisk_findings{", "category=\"custom\""]), Some(1.0));
    assert_eq!(value(&rendered, &["crmrisk_workloads_matched{"]), Some(2.0));

    metrics.record_policy("baseline", &snapshot(&[(&a, vec![])], 12));
    let rendered = metrics.render();
    assert!(!rendered.contains("crm-worker"), "stale series left:\n{rendered}");
    assert!(rendered.contains("workload=\"crm-api\""));
    // Custom categories disappear with their last finding; built-in ones stay at 0.
    assert!(!rendered.contains("category=\"custom\""), "{rendered}");
    assert_eq!(value(&rendered, &["crmrisk_findings{", "category=\"rbac\"", "band=\"low\""]), Some(0.0));
    assert_eq!(value(&rendered, &["crmrisk_workloads_matched{"]), Some(1.0));
}

#[test]
fn forgetting_a_policy_removes_all_its_series() {
    let metrics = Metrics::new().unwrap();
    let crm = workload("crm", "crm-api");
    for policy in ["baseline", "strict"] {
        metrics.record_policy(policy, &snapshot(&[(&crm, vec![finding(Category::Rbac, 9, true)])], 12));
        metrics.set_policy_ready(policy, true);
        metrics.observe_reconcile(policy, Duration::from_millis(5));
        metrics.record_reconcile_error(policy, "compile");
    }
    metrics.forget_policy("strict");
    let rendered = metrics.render();
    assert!(!rendered.contains("policy=\"strict\""), "series of a deleted policy left:\n{rendered}");
    assert!(rendered.contains("policy=\"baseline\""));
    // Forgetting an unknown policy is harmless.
    metrics.forget_policy("never-seen");
}

/// A bare HTTP/1.1 GET over a std socket (on a blocking thread), so the test needs no HTTP
/// client crate.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn readyz_follows_readiness_and_metrics_are_served() {
    let metrics = Arc::new(Metrics::new().unwrap());
    let readiness = Readiness::new();
    let server = TelemetryServer::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(Arc::clone(&metrics), readiness.clone(), stop_rx));

    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    readiness.set_not_ready("caches not synced");
    let (status, body) = http_get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("caches not synced"), "{body}");

    readiness.set_ready(true);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);

    metrics.record_api_write(WriteKind::Report);
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("crmrisk_api_writes_total{kind=\"report\"} 1"), "{body}");
    assert_eq!(http_get(addr, "/other").await.0, 404);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening after shutdown");
}

#[tokio::test]
async fn a_taken_port_is_an_error_not_a_panic() {
    let first = TelemetryServer::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let result = crmrisk::telemetry::serve(
        first.local_addr(),
        Arc::new(Metrics::new().unwrap()),
        Readiness::new(),
        std::future::pending::<()>(),
    )
    .await;
    let error = result.expect_err("binding a taken port must fail");
    assert!(error.to_string().contains(&first.local_addr().to_string()), "{error}");
}

#[test]
fn logging_init_is_idempotent() {
    logging::init(LogFormat::Json, "").unwrap();
    logging::init(LogFormat::Text, "debug").unwrap();
    tracing::info!("logged once the subscriber is set");
}
