//! Scale benchmark of the operator on the real test control plane (not a test: it measures).
//!
//! Creates N CRM workloads (Deployments with a ServiceAccount, a PVC and a RoleBinding each,
//! spread over namespaces), starts `crmrisk run` as a separate process, and measures:
//! - time from operator start to a complete policy status (all N workloads evaluated);
//! - latency from a change to a related object (a PodDisruptionBudget) to the updated report,
//!   p50 and p99 over M changes;
//! - the operator's peak RSS (VmHWM);
//! - API writes during a quiet period in which nothing changed (target 0).
//!
//! Run with bench/cluster-scale.sh (builds the release binary first).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crmrisk_testbed::ControlPlane;
use crmrisk_testbed::operator::{ensure_crds, kubectl_apply};
use futures::{StreamExt, stream};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

async fn create(client: &kube::Client, ns: Option<&str>, res: &ApiResource, value: serde_json::Value) {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, res),
        None => Api::all_with(client.clone(), res),
    };
    let obj: DynamicObject = serde_json::from_value(value).expect("object");
    for attempt in 0..5 {
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) if attempt < 4 => {
                eprintln!("retrying create: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("create failed: {e}"),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

async fn metric(addr: &str, name: &str) -> f64 {
    let Ok(out) = Command::new("curl").args(["-s", &format!("http://{addr}/metrics")]).output() else { return 0.0 };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() {
    let workloads = arg("--workloads", 5000);
    let per_ns = arg("--per-namespace", 100);
    let changes = arg("--changes", 100);
    let quiet_secs = arg("--quiet-seconds", 30) as u64;
    let binary = PathBuf::from(std::env::var("CRMRISK_BIN").unwrap_or_else(|_| "target/release/crmrisk".into()));
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    ensure_crds(cp, &crmrisk::api::crds_yaml()).expect("CRDs");

    let namespaces = workloads.div_ceil(per_ns);
    eprintln!(
        "[bench] creating {workloads} workloads in {namespaces} namespaces (+ ServiceAccount, PVC, RoleBinding each)"
    );
    let t = Instant::now();
    let ns_res = ar("", "v1", "Namespace", "namespaces");
    for n in 0..namespaces {
        create(&client, None, &ns_res, serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("bench-{n}"), "labels": {"crmrisk.io/bench": "true", "crmrisk.io/data-classification": "confidential"}}}))
        .await;
    }
    kubectl_apply(cp, "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bench-gp3}\nprovisioner: ebs.csi.aws.com\nparameters: {type: gp3, encrypted: \"true\"}\n", None).unwrap();
    let sa = ar("", "v1", "ServiceAccount", "serviceaccounts");
    let pvc = ar("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    let rb = ar("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings");
    let dep = ar("apps", "v1", "Deployment", "deployments");
    let client2 = client.clone();
    stream::iter(0..workloads)
        .for_each_concurrent(16, |i| {
            let client = client2.clone();
            let (sa, pvc, rb, dep) = (sa.clone(), pvc.clone(), rb.clone(), dep.clone());
            async move {
                let ns = format!("bench-{}", i / per_ns);
                let name = format!("crm-{i}");
                create(&client, Some(&ns), &sa, serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})).await;
                create(&client, Some(&ns), &pvc, serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("data-{name}")},
                    "spec": {"storageClassName": "bench-gp3", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})).await;
                create(&client, Some(&ns), &rb, serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})).await;
                // Paused, so the controller-manager does not create ReplicaSets and pods: the
                // bench measures the operator, not the test cluster.
                create(&client, Some(&ns), &dep, serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "labels": {"app": name}},
                    "spec": {"replicas": 2, "paused": true, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}, "spec": {"serviceAccountName": name,
                            "containers": [{"name": "web", "image": "registry.example.com/crm/web:2.3.1",
                                "env": [{"name": "DATABASE_URL", "value": "postgres://crm@db:5432/crm?sslmode=verify-full"}],
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}],
                            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}}]}}}})).await;
            }
        })
        .await;
    eprintln!("[bench] created in {:.1}s", t.elapsed().as_secs_f64());
    kubectl_apply(cp, "apiVersion: crmrisk.io/v1alpha1\nkind: CRMRiskPolicy\nmetadata: {name: bench}\nspec:\n  match:\n    namespaceSelector: {matchLabels: {crmrisk.io/bench: \"true\"}}\n  auditInterval: 1h\n", None).unwrap();
    kubectl_apply(cp, "apiVersion: v1\nkind: Namespace\nmetadata: {name: crm-risk-operator}\n", None).unwrap();

    // The operator as a separate process (to measure its memory), admin identity.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Command::new(&binary)
        .args(["run", "--metrics-addr", &addr, "--log-filter", "warn"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("POD_NAMESPACE", "crm-risk-operator")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let pid = child.id();
    let policies: Api<crmrisk::api::CRMRiskPolicy> = Api::all(client.clone());
    loop {
        let matched = policies
            .get_opt("bench")
            .await
            .ok()
            .flatten()
            .and_then(|p| p.status)
            .map(|s| s.summary.workloads_matched)
            .unwrap_or(0);
        if matched as usize >= workloads {
            break;
        }
        if started.elapsed() > Duration::from_secs(1200) {
            panic!("status incomplete after 20 min ({matched}/{workloads})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to_status = started.elapsed();
    eprintln!("[bench] complete status after {:.2}s", to_status.as_secs_f64());
    // Let the report writes drain.
    let reports_ready = Instant::now();
    loop {
        let w = metric(&addr, "crmrisk_api_writes_total{kind=\"report\"}").await;
        if w as usize >= workloads || reports_ready.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let to_reports = started.elapsed();
    eprintln!("[bench] {workloads} reports written after {:.2}s", to_reports.as_secs_f64());

    // Quiet period: no change in the cluster -> no write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let w0 = metric(&addr, "crmrisk_api_writes_total").await;
    tokio::time::sleep(Duration::from_secs(quiet_secs)).await;
    let quiet_writes = metric(&addr, "crmrisk_api_writes_total").await - w0;
    eprintln!("[bench] writes during {quiet_secs}s without change: {quiet_writes}");

    // Change -> report latency: add a PDB for one workload, wait until its report drops DR-002.
    let pdb = ar("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets");
    let mut latencies = Vec::new();
    for c in 0..changes {
        let i = (c * 37) % workloads;
        let ns = format!("bench-{}", i / per_ns);
        let name = format!("crm-{i}");
        let reports: Api<crmrisk::api::CRMRiskReport> = Api::namespaced(client.clone(), &ns);
        let t0 = Instant::now();
        create(
            &client,
            Some(&ns),
            &pdb,
            serde_json::json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}}),
        )
        .await;
        loop {
            let r = reports.get_opt(&format!("deployment-{name}")).await.ok().flatten();
            if r.is_some_and(|r| r.spec.findings.iter().all(|f| f.finding.id != "DR-002")) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                panic!("report of {ns}/{name} not updated after 60s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    let rss = vm_hwm_kib(pid).unwrap_or(0);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let mut out = BTreeMap::new();
    out.insert("workloads", workloads.to_string());
    out.insert("seconds_to_complete_status", format!("{:.2}", to_status.as_secs_f64()));
    out.insert("seconds_to_all_reports", format!("{:.2}", to_reports.as_secs_f64()));
    out.insert("change_to_report_p50_ms", format!("{:.0}", percentile(&latencies, 0.50).as_secs_f64() * 1000.0));
    out.insert("change_to_report_p99_ms", format!("{:.0}", percentile(&latencies, 0.99).as_secs_f64() * 1000.0));
    out.insert("peak_rss_mib", format!("{:.1}", rss as f64 / 1024.0));
    out.insert("writes_during_quiet_period", format!("{quiet_writes}"));
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
