//! The Helm chart (`charts/crm-risk-operator`): lint and render with a real Helm (built from Go
//! modules by tests/tools/build-helm.sh, or `CRMRISK_HELM=<path>`), validate the rendered objects
//! on the real API server, install the chart, and run the operator in this process as the
//! chart's ServiceAccount so every call it makes is checked against the chart's RBAC.
//!
//! The static checks (CRDs and RBAC rules identical to their sources, dashboard shape, metric
//! names the dashboard and alerts use) need neither Helm nor the control plane.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crmrisk::api::{CRMRiskPolicy, CRMRiskReport};
use crmrisk::run::RunArgs;
use crmrisk::telemetry::LogFormat;
use crmrisk_testbed::operator::{http_get, kubectl, kubectl_apply, risky_stack};
use crmrisk_testbed::{ControlPlane, TestNamespace, repo_root, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::common::{SERIAL, WAIT, policy_status, setup};

const CHART: &str = "charts/crm-risk-operator";
const KUBE_VERSION: &str = "1.34.4";

fn chart_dir() -> PathBuf {
    repo_root().join(CHART)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Helm binary: `CRMRISK_HELM`, else whatever tests/tools/build-helm.sh prints (it builds
/// Helm from the Go module proxy once and caches it).
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(p) = std::env::var_os("CRMRISK_HELM") {
            return PathBuf::from(p);
        }
        let script = repo_root().join("tests/tools/build-helm.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed ({})", script.display(), out.status);
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(path.is_file(), "{} printed {:?}, which is not a file", script.display(), path);
        path
    })
}

/// `helm` with its state directories inside target/ (never the user's), and no ambient
/// kubeconfig: commands that need a cluster pass `--kubeconfig` explicitly.
fn helm() -> Command {
    let home = repo_root().join("target/testbed/helm-home");
    let mut c = Command::new(helm_bin());
    c.current_dir(repo_root())
        .env_remove("KUBECONFIG")
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    c
}

/// Run helm; stdout on success, a panic with stderr otherwise.
fn helm_ok(args: &[&str]) -> String {
    let out = helm().args(args).output().expect("running helm");
    assert!(
        out.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template` of the chart with `--set` values.
fn render(release: &str, namespace: &str, set: &[&str]) -> String {
    let mut args = vec!["template", release, CHART, "--namespace", namespace, "--kube-version", KUBE_VERSION];
    for s in set {
        args.extend(["--set", s]);
    }
    helm_ok(&args)
}

/// Every object of a multi-document YAML text, parsed by the same loader `crmrisk scan` uses.
fn objects(yaml: &str) -> Vec<Value> {
    let mut loaded = crmrisk::scan::load::Loaded::default();
    crmrisk::scan::load::parse_into("rendered", yaml, &mut loaded);
    assert!(loaded.errors.is_empty(), "rendered chart is not valid YAML: {:?}", loaded.errors);
    loaded.documents.into_iter().map(|d| d.value).collect()
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter().filter_map(|o| o["kind"].as_str()).map(str::to_owned).collect()
}

fn find<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    objs.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The `rules` of the first object of `kind` in a chart file.
fn file_rules(file: &str, kind: &str) -> Value {
    let objs = objects(&read(&chart_dir().join("files").join(file)));
    find(&objs, kind)["rules"].clone()
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated = repo_root().join("crds");
    let in_chart = chart_dir().join("crds");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect()
    };
    if std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1") {
        for n in names(&in_chart) {
            std::fs::remove_file(in_chart.join(n)).expect("remove stale chart CRD");
        }
        for n in names(&generated) {
            std::fs::copy(generated.join(&n), in_chart.join(&n)).expect("copy CRD into the chart");
        }
    }
    let expected = names(&generated);
    assert!(!expected.is_empty());
    assert_eq!(names(&in_chart), expected, "the chart's crds/ must hold exactly the files of crds/");
    for n in &expected {
        assert!(
            std::fs::read(generated.join(n)).unwrap() == std::fs::read(in_chart.join(n)).unwrap(),
            "{CHART}/crds/{n} differs from crds/{n}. Copy it: UPDATE_CRDS=1 cargo test -p crmrisk-testbed --test e2e chart_crds"
        );
    }
}

#[test]
fn dashboard_is_a_grafana_dashboard_with_the_promised_panels() {
    let path = chart_dir().join("dashboards/crm-risk.json");
    let d: Value = serde_json::from_str(&read(&path)).expect("dashboard is JSON");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid (Grafana allows 40 characters)");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 30), "schemaVersion");
    assert!(d["id"].is_null(), "no database id: the dashboard must import into any Grafana");
    let panels = d["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "panel without title: {p}");
        assert!(p["type"].as_str().is_some(), "{title}: type");
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{title}: duplicate id");
        let g = &p["gridPos"];
        for k in ["x", "y", "w", "h"] {
            assert!(g[k].as_u64().is_some(), "{title}: gridPos.{k}");
        }
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{title}: wider than the grid");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            assert!(t["refId"].as_str().is_some(), "{title}: refId");
            exprs.push(t["expr"].as_str().unwrap_or_else(|| panic!("{title}: expr")).to_owned());
        }
    }
    let all = exprs.join("\n");
    for needle in [
        "crmrisk_workload_risk_score",
        "crmrisk_findings{",
        "by (band)",
        "by (category)",
        "crmrisk_workloads_above_tolerance",
        "histogram_quantile(0.5, sum by (le) (rate(crmrisk_reconcile_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(crmrisk_reconcile_duration_seconds_bucket",
        "crmrisk_api_writes_total",
    ] {
        assert!(all.contains(needle), "no panel queries {needle:?}");
    }
}

/// Metric and label names the operator exports, from a registry with every series populated.
fn exported_names() -> (BTreeSet<String>, BTreeSet<String>) {
    use crmrisk::model::{Band, Category, WorkloadKind, WorkloadRef};
    let m = crmrisk::telemetry::Metrics::new().unwrap();
    let mut snap = crmrisk::telemetry::PolicyMetricsSnapshot::default();
    let w = WorkloadRef { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: "w".into() };
    snap.workload_scores.insert(w, 12);
    snap.findings.insert((Category::Encryption, Band::High), 1);
    snap.accepted.insert(Category::Backups, 1);
    snap.above_tolerance = 1;
    m.record_policy("p", &snap);
    m.set_policy_ready("p", true);
    m.observe_reconcile("p", Duration::from_millis(5));
    m.record_reconcile_error("p", "compile");
    m.observe_evaluation(Duration::from_millis(1));
    m.record_api_write(crmrisk::telemetry::WriteKind::Status);
    m.set_leader(true);
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::from(["job".to_owned(), "instance".to_owned(), "namespace".to_owned()]);
    let text = m.render();
    // Families (`# TYPE crmrisk_reconcile_duration_seconds histogram`) and series names.
    metrics.extend(text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).map(str::to_owned));
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        metrics.insert(line[..name_end].to_owned());
        if let Some(set) = line.get(name_end..).and_then(|r| r.strip_prefix('{')).and_then(|r| r.split('}').next()) {
            for pair in set.split(',').filter(|p| !p.is_empty()) {
                labels.insert(pair.split('=').next().unwrap_or_default().to_owned());
            }
        }
    }
    (metrics, labels)
}

/// Every `crmrisk_*` name in `text`.
fn metric_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crmrisk_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Every label named in a `by (...)` clause of `text`.
fn by_labels(text: &str) -> BTreeSet<String> {
    text.split("by (")
        .skip(1)
        .filter_map(|s| s.split(')').next())
        .flat_map(|s| s.split(',').map(|l| l.trim().to_owned()))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn dashboard_and_alerts_use_only_metrics_and_labels_the_operator_exports() {
    let (metrics, labels) = exported_names();
    assert!(metrics.contains("crmrisk_reconcile_duration_seconds_bucket"), "{metrics:?}");
    for file in ["dashboards/crm-risk.json", "templates/prometheusrule.yaml"] {
        let text = read(&chart_dir().join(file));
        let used = metric_refs(&text);
        assert!(!used.is_empty(), "{file} uses no crmrisk metric");
        let unknown: Vec<_> = used.difference(&metrics).collect();
        assert!(unknown.is_empty(), "{file} uses metrics the operator does not export: {unknown:?}");
        let mut known_labels = labels.clone();
        known_labels.insert("le".into());
        let unknown: Vec<_> = by_labels(&text).into_iter().filter(|l| !known_labels.contains(l)).collect();
        assert!(unknown.is_empty(), "{file} groups by labels no metric has: {unknown:?}");
    }
}

#[test]
fn chart_lints_renders_and_takes_its_rbac_rules_from_the_shared_files() {
    helm_ok(&["lint", "--strict", CHART]);
    helm_ok(&[
        "lint",
        "--strict",
        CHART,
        "--set",
        "serviceMonitor.enabled=true,prometheusRule.enabled=true,defaultPolicy.enabled=true",
    ]);

    let objs = objects(&render("crmrisk", "crm-risk-system", &[]));
    let expected: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(kinds(&objs), expected, "objects of the default render");

    // One source of truth: the rendered rules are the files' rules (the tests run the operator
    // with those files, so they test what the chart installs).
    assert_eq!(find(&objs, "ClusterRole")["rules"], file_rules("clusterrole.yaml", "ClusterRole"));
    assert_eq!(find(&objs, "Role")["rules"], file_rules("lease-role.yaml", "Role"));
    let sa = find(&objs, "ServiceAccount")["metadata"]["name"].as_str().unwrap().to_owned();
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let subject = &find(&objs, kind)["subjects"][0];
        assert_eq!(
            (subject["name"].as_str(), subject["namespace"].as_str()),
            (Some(sa.as_str()), Some("crm-risk-system"))
        );
    }

    // The Deployment: HA, hardened, probes on the metrics port, the downward API.
    let deploy = find(&objs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa.as_str());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(
        args,
        ["run", "--metrics-addr", "0.0.0.0:8080", "--log-format", "json", "--log-filter", "info,kube=warn"]
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], c["ports"][0]["name"], "{probe} on the metrics port");
    }
    let env: BTreeMap<&str, &str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(env.get("POD_NAME"), Some(&"metadata.name"));
    assert_eq!(env.get("POD_NAMESPACE"), Some(&"metadata.namespace"));
    for k in ["requests", "limits"] {
        assert!(c["resources"][k]["memory"].is_string(), "resources.{k}.memory");
    }
    let dashboard = find(&objs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded: Value = serde_json::from_str(dashboard["data"]["crm-risk.json"].as_str().unwrap()).unwrap();
    assert_eq!(embedded["uid"], "crm-risk-operator");

    // Everything on: still valid YAML, and the optional objects are there.
    let all = objects(&render(
        "crmrisk",
        "crm-risk-system",
        &["serviceMonitor.enabled=true,prometheusRule.enabled=true,defaultPolicy.enabled=true"],
    ));
    for kind in ["ServiceMonitor", "PrometheusRule", "CRMRiskPolicy"] {
        assert!(kinds(&all).contains(kind), "{kind} rendered with everything on");
    }
    let rules = &find(&all, "PrometheusRule")["spec"]["groups"][0]["rules"];
    let alerts: Vec<&str> = rules.as_array().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    assert!(alerts.len() >= 4, "{alerts:?}");
    let exprs: String =
        rules.as_array().unwrap().iter().filter_map(|r| r["expr"].as_str()).collect::<Vec<_>>().join("\n");
    for needle in ["crmrisk_workloads_above_tolerance", "crmrisk_policy_ready", "crmrisk_reconcile_errors_total", "up{"]
    {
        assert!(exprs.contains(needle), "an alert on {needle}");
    }
    assert_eq!(find(&all, "ServiceMonitor")["spec"]["endpoints"][0]["port"], "http-metrics");

    // One replica: no PodDisruptionBudget that would block every drain.
    let single = objects(&render("crmrisk", "crm-risk-system", &["replicaCount=1"]));
    assert!(!kinds(&single).contains("PodDisruptionBudget"));

    // values.schema.json rejects bad values at install time.
    for bad in ["replicaCount=0", "logFormat=xml", "image.pullPolicy=Sometimes", "metrics.port=0", "unknownValue=1"] {
        let out = helm()
            .args(["template", "x", CHART, "--kube-version", KUBE_VERSION, "--set", bad])
            .output()
            .expect("running helm");
        assert!(!out.status.success(), "--set {bad} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("schema"), "--set {bad}: not a schema error");
    }
}

/// `kubectl apply --dry-run=server --validate=strict -f -` of `yaml`: (success, stdout, stderr).
fn server_dry_run(cp: &ControlPlane, yaml: &str) -> (bool, String, String) {
    let mut child = cp
        .kubectl()
        .args(["apply", "--dry-run=server", "--validate=strict", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn rendered_chart_passes_strict_server_side_validation_and_the_restricted_pod_security_level() {
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let ns = TestNamespace::create(&admin, "chart-dry").await;
    // Pod Security admission warns about Deployments whose pods would violate the level.
    kubectl(
        cp,
        &[
            "label",
            "namespace",
            &ns.name,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ],
    )
    .unwrap();
    // The CRDs must exist for the CRMRiskPolicy to be validated against its schema.
    crmrisk_testbed::operator::ensure_crds(cp, &crmrisk::api::crds_yaml()).expect("CRDs installed");
    for set in [vec![], vec!["defaultPolicy.enabled=true".to_owned(), format!("defaultPolicy.name=dry-{}", ns.name)]] {
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        let yaml = render("dry", &ns.name, &set);
        let (ok, stdout, stderr) = server_dry_run(cp, &yaml);
        assert!(ok, "server-side validation of the chart ({set:?}) failed:\n{stderr}{stdout}");
        let applied = stdout.lines().filter(|l| l.contains("(server dry run)")).count();
        assert_eq!(applied, objects(&yaml).len(), "every object validated:\n{stdout}");
        assert!(!stderr.contains("PodSecurity"), "the operator's pods meet the restricted level:\n{stderr}");
    }
    // The check above can fail: a plain Deployment gets the warning.
    let plain = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: plain, namespace: {}}}\n\
         spec: {{selector: {{matchLabels: {{app: plain}}}}, template: {{metadata: {{labels: {{app: plain}}}}, \
         spec: {{containers: [{{name: c, image: busybox}}]}}}}}}\n",
        ns.name
    );
    let (ok, _, stderr) = server_dry_run(cp, &plain);
    assert!(ok && stderr.contains("PodSecurity"), "Pod Security admission is active on the test bed:\n{stderr}");
}

/// `helm uninstall` when the test ends, also on panic.
struct Release<'a> {
    name: String,
    namespace: String,
    kubeconfig: &'a Path,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let kc = self.kubeconfig.to_string_lossy().into_owned();
        let _ = helm()
            .args(["uninstall", &self.name, "--namespace", &self.namespace, "--kubeconfig", &kc])
            .args(["--wait", "--timeout", "60s"])
            .output();
    }
}

/// A client that authenticates with a token of `sa` in `namespace` (admin kubeconfig's server
/// and CA, nothing else of the admin identity).
async fn service_account_client(cp: &ControlPlane, namespace: &str, sa: &str) -> kube::Client {
    let token = kubectl(cp, &["create", "token", sa, "-n", namespace, "--duration", "1h"]).expect("token");
    let mut kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    for auth in &mut kc.auth_infos {
        auth.auth_info =
            Some(kube::config::AuthInfo { token: Some(token.trim().to_owned().into()), ..Default::default() });
    }
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.expect("config");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test]
async fn chart_installs_and_the_operator_runs_under_its_service_account() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let release_ns = TestNamespace::create(&admin, "chart-op").await;
    let crm_ns = TestNamespace::create(&admin, "chart-crm").await;
    setup(cp, &crm_ns.name).await;
    kubectl_apply(cp, &risky_stack(&crm_ns.name).unwrap(), None).expect("risky stack applies");

    // Install with the chart's default policy, pointed at the workload namespace only.
    let release = format!("crr-{}", std::process::id());
    let policy_name = format!("chart-{}", crm_ns.name);
    let values = repo_root().join(format!("target/testbed/{release}-values.yaml"));
    std::fs::create_dir_all(values.parent().unwrap()).unwrap();
    std::fs::write(
        &values,
        format!(
            "defaultPolicy:\n  enabled: true\n  name: {policy_name}\n  spec:\n    match:\n      namespaceSelector: null\n      namespaces: [{}]\n",
            crm_ns.name
        ),
    )
    .unwrap();
    let kubeconfig = cp.kubeconfig.to_string_lossy().into_owned();
    let release_guard =
        Release { name: release.clone(), namespace: release_ns.name.clone(), kubeconfig: &cp.kubeconfig };
    helm_ok(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &release_ns.name,
        "--kubeconfig",
        &kubeconfig,
        "--values",
        &values.to_string_lossy(),
    ]);
    let fullname = format!("{release}-crm-risk-operator");
    let status = helm_ok(&["status", &release, "--namespace", &release_ns.name, "--kubeconfig", &kubeconfig]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    kubectl(cp, &["get", "deployment", &fullname, "-n", &release_ns.name]).expect("the Deployment exists");
    kubectl(cp, &["get", "clusterrole,clusterrolebinding", &fullname]).expect("cluster RBAC exists");

    // The chart's ServiceAccount can do what the operator needs and nothing on Secrets.
    let who = format!("system:serviceaccount:{}:{fullname}", release_ns.name);
    let can = |args: &[&str]| {
        let out = cp.kubectl().args(["auth", "can-i"]).args(args).args(["--as", &who]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(can(&["list", "deployments.apps", "-A"]));
    assert!(can(&["patch", "crmriskpolicies.crmrisk.io", "--subresource", "status"]));
    assert!(!can(&["update", "crmriskpolicies.crmrisk.io"]), "the operator never changes a policy's spec");
    assert!(can(&["update", "leases.coordination.k8s.io/crm-risk-operator-leader", "-n", &release_ns.name]));
    assert!(!can(&["get", "secrets", "-A"]), "the operator must not read Secrets");
    assert!(!can(&["update", "leases.coordination.k8s.io/other", "-n", &release_ns.name]));

    // The operator, in this process, as that ServiceAccount (the chart's pods cannot run: the
    // test bed has no nodes).
    let _ = crmrisk::telemetry::logging::init(LogFormat::Text, "warn,crmrisk=info");
    let client = service_account_client(cp, &release_ns.name, &fullname).await;
    let args = RunArgs {
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        namespace: release_ns.name.clone(),
        lease_name: crmrisk::leader::DEFAULT_LEASE_NAME.to_owned(),
        identity: Some("chart-replica".to_owned()),
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
    };
    let op = crmrisk::run::start(&args, client).await.expect("operator starts");

    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());
    let status = wait_for("the chart's policy reconciled", WAIT, || async {
        policy_status(&policies, &policy_name).await.filter(|s| s.summary.workloads_matched > 0)
    })
    .await
    .unwrap();
    assert_eq!(status.summary.workloads_matched, 3, "{status:?}");
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str());
    assert_eq!(ready, Some("True"), "{status:?}");
    // What the Argo CD and Flux health checks in docs/operating.md rely on.
    let generation = policies.get(&policy_name).await.unwrap().metadata.generation;
    assert_eq!(status.observed_generation, generation, "observedGeneration is the policy's generation");
    let reports: Api<CRMRiskReport> = Api::namespaced(admin.clone(), &crm_ns.name);
    let list = wait_for("CRMRiskReports in the workload namespace", WAIT, || async {
        reports.list(&ListParams::default()).await.ok().filter(|l| l.items.len() == 3)
    })
    .await
    .unwrap();
    assert!(list.items.iter().all(|r| !r.spec.findings.is_empty()), "the risky stack has findings");

    // Leader election through the chart's Role: the Lease in the release namespace is ours.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &release_ns.name);
    let lease = leases.get(crmrisk::leader::DEFAULT_LEASE_NAME).await.expect("the Lease exists");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some("chart-replica"));
    wait_for("/readyz 200", WAIT, || async {
        (http_get(op.metrics_addr, "/readyz").await.ok()?.0 == 200).then_some(())
    })
    .await
    .unwrap();
    let (_, body) = http_get(op.metrics_addr, "/metrics").await.unwrap();
    assert!(body.contains(&format!("crmrisk_policy_ready{{policy=\"{policy_name}\"}} 1")), "{body}");
    op.stop().await;

    // Uninstall removes the cluster-scoped objects and the policy too.
    drop(release_guard);
    for (kind, name) in [("clusterrole", fullname.as_str()), ("clusterrolebinding", &fullname), ("crp", &policy_name)] {
        let out = kubectl(cp, &["get", kind, name, "--ignore-not-found", "-o", "name"]).unwrap();
        assert!(out.trim().is_empty(), "{kind}/{name} left after helm uninstall");
    }
}
