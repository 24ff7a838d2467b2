//! The generated CRDs on a real kube-apiserver: they install (server-side apply, idempotent),
//! the server applies the same defaults as the Rust types, the CEL and range validations reject
//! what they should, `kubectl explain` shows the documentation, and a report built from a real
//! assessment is stored as written (nothing pruned).
//!
//! The CRDs are cluster-scoped and shared by every test of the binary, so they are applied with
//! server-side apply and `force` (the same content from every test, no conflicts). Policies are
//! cluster-scoped too: they get unique names, are deleted by a guard (also on panic), and match
//! only a namespace that does not exist, so an operator started by another test has nothing to
//! evaluate for them.

use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crmrisk::api::{CRMRiskPolicy, CRMRiskReport, CRMRiskReportSpec, ReportFinding, ReportPolicy, ReportWorkloadRef};
use crmrisk_testbed::{ControlPlane, TestNamespace, repo_root, wait_for};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "crmrisk-test";
const WAIT: Duration = Duration::from_secs(60);

/// Apply every crmrisk CRD (server-side, forced) and wait until each is Established. Returns
/// the generations as stored.
async fn install_crds(client: &Client) -> Vec<(String, i64)> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut generations = Vec::new();
    for crd in crmrisk::api::all_crds() {
        let name = crd.metadata.name.clone().expect("CRDs have names");
        api.patch(&name, &params, &Patch::Apply(&crd)).await.unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        let established = wait_for(&format!("CRD {name} Established"), WAIT, || async {
            let crd = api.get(&name).await.ok()?;
            let conditions = crd.status.as_ref()?.conditions.as_ref()?;
            let ok = |t: &str| conditions.iter().any(|c| c.type_ == t && c.status == "True");
            (ok("Established") && ok("NamesAccepted")).then_some(crd)
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
        generations.push((name, established.metadata.generation.unwrap_or_default()));
    }
    generations
}

/// A name no other test (or concurrent test binary) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Deletes a cluster-scoped CRMRiskPolicy when dropped, also when the test panics.
struct PolicyGuard(String);

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        let _ = ControlPlane::shared()
            .kubectl()
            .args(["delete", "crmriskpolicies.crmrisk.io", &self.0, "--ignore-not-found", "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn policy_resource() -> ApiResource {
    ApiResource::erase::<CRMRiskPolicy>(&())
}

/// The documents of a manifest file of the repository, as JSON.
fn read_manifests(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut loaded = crmrisk::scan::load::Loaded::default();
    crmrisk::scan::load::parse_into(path, &text, &mut loaded);
    assert!(loaded.errors.is_empty(), "{path}: {:?}", loaded.errors);
    loaded.documents.into_iter().map(|d| d.value).collect()
}

/// An example policy as JSON, renamed and narrowed to a namespace that does not exist.
fn example_policy(file: &str, name: &str) -> Value {
    let mut value = read_manifests(&format!("examples/policies/{file}")).remove(0);
    value["metadata"] = json!({ "name": name });
    value["spec"]["match"]["namespaces"] = json!([format!("{name}-nowhere")]);
    value
}

/// The error of a create that must fail: a 422 Invalid from the apiserver.
fn expect_invalid<T: std::fmt::Debug>(result: kube::Result<T>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{what}: expected 422 Invalid, got {status:?}");
            assert_eq!(status.reason, "Invalid", "{what}: {status:?}");
            status.message
        }
        other => panic!("{what}: expected the apiserver to reject it, got {other:?}"),
    }
}

#[tokio::test]
async fn crds_install_idempotently_and_are_established() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    let first = install_crds(&client).await;
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["crmriskpolicies.crmrisk.io", "crmriskreports.crmrisk.io", "crmriskexceptions.crmrisk.io"]);
    // Applying the same CRDs again changes nothing: the generation stays.
    let second = install_crds(&client).await;
    assert_eq!(first, second, "re-applying identical CRDs must not change them");
    // The short names are served.
    let out = cp.kubectl().args(["api-resources", "--api-group", "crmrisk.io", "-o", "name"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    for plural in ["crmriskpolicies", "crmriskreports", "crmriskexceptions"] {
        assert!(listed.contains(plural), "{plural} served: {listed}");
    }
}

#[tokio::test]
async fn example_policies_are_accepted_and_defaulted_like_the_rust_types() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    install_crds(&client).await;
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &policy_resource());
    let typed: Api<CRMRiskPolicy> = Api::all(client.clone());

    for file in ["crm-baseline.yaml", "crm-image-hygiene.yaml"] {
        let name = unique(file.trim_end_matches(".yaml"));
        let _guard = PolicyGuard(name.clone());
        let sent = example_policy(file, &name);
        let object: DynamicObject = serde_json::from_value(sent.clone()).expect("dynamic object");
        let created = dynamic
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating the policy of {file}: {e}"));
        let spec = &created.data["spec"];

        // Fields the example omits come back with the server's defaults...
        assert_eq!(spec["checks"]["rbac"]["forbidClusterAdmin"], json!(true), "{file}: {spec}");
        assert_eq!(spec["checks"]["rbac"]["forbidTokenAutomount"], json!(true), "{file}: {spec}");
        assert_eq!(spec["checks"]["encryption"]["requireIngressTLS"], json!(true), "{file}: {spec}");
        assert_eq!(spec["checks"]["disasterRecovery"]["requireZoneSpread"], json!(true), "{file}: {spec}");
        // ...and fields it sets keep their values.
        assert_eq!(spec["riskTolerance"], sent["spec"]["riskTolerance"], "{file}");
        assert_eq!(spec["match"]["namespaceSelector"], sent["spec"]["match"]["namespaceSelector"], "{file}");

        // The server's defaults are the Rust types' defaults: the stored policy, read as the
        // typed object, equals the example parsed locally with serde's defaults.
        let stored = typed.get(&name).await.expect("read back typed");
        let local: CRMRiskPolicy = serde_json::from_value(sent).expect("example parses as CRMRiskPolicy");
        assert_eq!(stored.spec, local.spec, "{file}: server-side defaults differ from the Rust defaults");
        assert!(stored.spec.validate().is_ok(), "{file}: {:?}", stored.spec.validate());
    }
}

#[tokio::test]
async fn cel_rule_rejects_custom_policy_with_both_or_neither_source() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    install_crds(&client).await;
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &policy_resource());
    let rego = "package crmrisk.custom.x\n\nmetadata := {}\n\nfindings := set()\n";

    let cases = [
        ("both", json!({"name": "both", "rego": rego, "configMapRef": {"name": "cm", "namespace": "crm"}})),
        ("neither", json!({"name": "neither"})),
    ];
    for (what, custom) in cases {
        let name = unique(&format!("cel-{what}"));
        let _guard = PolicyGuard(name.clone());
        let mut policy = example_policy("crm-baseline.yaml", &name);
        policy["spec"]["customPolicies"] = json!([custom]);
        let object: DynamicObject = serde_json::from_value(policy).unwrap();
        let message = expect_invalid(dynamic.create(&PostParams::default(), &object).await, what);
        assert!(message.contains("set exactly one of rego or configMapRef"), "{what}: {message}");
        assert!(message.contains("spec.customPolicies[0]"), "{what}: the message names the field: {message}");
    }

    // Exactly one source is fine.
    let name = unique("cel-ok");
    let _guard = PolicyGuard(name.clone());
    let mut policy = example_policy("crm-baseline.yaml", &name);
    policy["spec"]["customPolicies"] = json!([{"name": "from-cm", "configMapRef": {"name": "cm", "namespace": "crm"}}]);
    let created = dynamic.create(&PostParams::default(), &serde_json::from_value(policy).unwrap()).await.unwrap();
    assert_eq!(created.data["spec"]["customPolicies"][0]["configMapRef"]["key"], "policy.rego", "key defaulted");
}

#[tokio::test]
async fn out_of_range_risk_tolerance_is_rejected() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    install_crds(&client).await;
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &policy_resource());
    for tolerance in [30, 0] {
        let name = unique("tolerance");
        let _guard = PolicyGuard(name.clone());
        let mut policy = example_policy("crm-baseline.yaml", &name);
        policy["spec"]["riskTolerance"] = json!(tolerance);
        let object: DynamicObject = serde_json::from_value(policy).unwrap();
        let message = expect_invalid(
            dynamic.create(&PostParams::default(), &object).await,
            &format!("riskTolerance {tolerance}"),
        );
        assert!(message.contains("spec.riskTolerance"), "{message}");
        let bound = if tolerance > 25 { "less than or equal to 25" } else { "greater than or equal to 1" };
        assert!(message.contains(bound), "{message}");
    }
}

#[tokio::test]
async fn exceptions_require_an_expiry() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds-exception").await;
    let resource = ApiResource::erase::<crmrisk::api::CRMRiskException>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);
    let exception = |name: &str, expires: Option<&str>| -> DynamicObject {
        let mut spec = json!({
            "workloads": [{"kind": "StatefulSet", "name": "crm-db"}],
            "rules": ["BKP-003"],
            "reason": "nightly dumps to S3 cover the gap until Velero is fixed (CRM-1234)",
            "approvedBy": "ciso@example.com",
        });
        if let Some(e) = expires {
            spec["expiresAt"] = json!(e);
        }
        serde_json::from_value(json!({
            "apiVersion": "crmrisk.io/v1alpha1", "kind": "CRMRiskException",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    };

    let created = api
        .create(&PostParams::default(), &exception("with-expiry", Some("2030-01-01T00:00:00Z")))
        .await
        .expect("an exception with expiresAt is accepted");
    assert_eq!(created.data["spec"]["expiresAt"], "2030-01-01T00:00:00Z");
    let typed: Api<crmrisk::api::CRMRiskException> = Api::namespaced(client.clone(), &ns.name);
    let stored = typed.get("with-expiry").await.expect("read back typed");
    assert!(stored.spec.is_active("2029-12-31T23:59:59Z".parse().unwrap()));
    assert!(!stored.spec.is_active("2030-01-01T00:00:00Z".parse().unwrap()));

    let message = expect_invalid(api.create(&PostParams::default(), &exception("no-expiry", None)).await, "no expiry");
    assert!(message.contains("spec.expiresAt") && message.contains("Required"), "{message}");

    // Neither workloads nor a selector: the exception's own CEL rule.
    let mut nothing = exception("no-workloads", Some("2030-01-01T00:00:00Z"));
    nothing.data["spec"]["workloads"] = json!([]);
    let message = expect_invalid(api.create(&PostParams::default(), &nothing).await, "no workloads");
    assert!(message.contains("set workloads, workloadSelector or both"), "{message}");
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_documentation() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    install_crds(&client).await;
    // The apiserver publishes a new CRD's OpenAPI asynchronously: retry for a while.
    let explain = |path: &'static str| async move {
        let out = cp.kubectl().args(["explain", path]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let text = wait_for("kubectl explain crp.spec.checks", WAIT, || async {
        explain("crp.spec.checks").await.filter(|t| t.contains("Built-in checks"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(text.contains("input.params"), "{text}");
    for field in ["encryption", "backups", "rbac", "disasterRecovery", "rules"] {
        assert!(text.contains(field), "field {field} listed:\n{text}");
    }
    let text = explain("crp.spec.checks.rbac.forbidClusterAdmin").await.expect("explain a leaf");
    assert!(text.contains("must not be bound to cluster-admin"), "{text}");
    let text = explain("cre.spec.expiresAt").await.expect("explain the exception");
    assert!(text.contains("required") || text.contains("Required"), "{text}");
}

#[tokio::test]
async fn report_from_a_real_assessment_is_stored_unchanged() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crds-report").await;

    // Assess the risky example's database with the default policy, as the operator would.
    let objects = crmrisk::context::ObjectSet::from_values(read_manifests("examples/risky/crm.yaml")).unwrap();
    let workload = objects.workloads().iter().find(|w| w.name() == "crm-db").expect("crm-db in the example");
    let (policy_name, spec) = crmrisk::scan::default_policy();
    let policy = crmrisk::assess::CompiledPolicy::compile(&policy_name, &spec, Vec::new(), Default::default()).unwrap();
    let assessment = policy.assess(&mut policy.evaluator(), workload, &objects, &[], Timestamp::now()).unwrap();
    assert!(!assessment.findings.is_empty());

    let mut report_spec = CRMRiskReportSpec {
        workload: ReportWorkloadRef::new(workload.kind, workload.name(), "00000000-0000-0000-0000-000000000001"),
        policies: vec![ReportPolicy {
            name: policy_name.clone(),
            risk_tolerance: policy.tolerance(),
            score: assessment.verdict.score,
            band: crmrisk::model::Band::of(assessment.verdict.score),
            acceptable: assessment.verdict.acceptable,
        }],
        score: assessment.verdict.score,
        band: crmrisk::model::Band::of(assessment.verdict.score),
        acceptable: assessment.verdict.acceptable,
        findings: Vec::new(),
        findings_omitted: 0,
        summary: Default::default(),
        last_evaluated: Some(Time("2026-01-15T12:00:00Z".parse().unwrap())),
    };
    report_spec.set_findings(assessment.findings.into_iter().map(|f| ReportFinding::new(&policy_name, f)).collect());
    let name = crmrisk::api::report_name(workload.kind, workload.name());
    let report = CRMRiskReport::new(&name, report_spec.clone());
    let api: Api<CRMRiskReport> = Api::namespaced(client.clone(), &ns.name);
    let created = api.create(&PostParams::default(), &report).await.expect("report accepted");
    assert_eq!(created.spec, report_spec, "the apiserver pruned or changed part of the report");
    let read = api.get(&name).await.unwrap();
    assert_eq!(read.spec, report_spec);
    assert_eq!(read.meta().namespace.as_deref(), Some(ns.name.as_str()));
    let out = cp.kubectl().args(["get", "crr", "-n", &ns.name, &name, "--no-headers"]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("StatefulSet") && line.contains("crm-db"), "printer columns: {line}");
}
