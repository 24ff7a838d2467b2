//! Helpers shared by the operator end-to-end tests (included with `#[path]` by each binary).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use crmrisk::api::{CRMRiskPolicy, CRMRiskReport};
use crmrisk::run::{RunArgs, Running};
use crmrisk::telemetry::LogFormat;
use crmrisk_testbed::operator::{ensure_crds, operator_client};
use crmrisk_testbed::{ControlPlane, wait_for};
use kube::api::Api;

/// Operators see every policy in the cluster, so operator tests run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const WAIT: Duration = Duration::from_secs(60);

pub async fn start_operator(cp: &ControlPlane, lease_namespace: &str, identity: &str) -> Running {
    let filter = std::env::var("CRMRISK_TEST_LOG").unwrap_or_else(|_| "error".into());
    let _ = crmrisk::telemetry::logging::init(LogFormat::Text, &filter);
    let args = RunArgs {
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        namespace: lease_namespace.to_owned(),
        lease_name: crmrisk::leader::DEFAULT_LEASE_NAME.to_owned(),
        identity: Some(identity.to_owned()),
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
    };
    let client = operator_client(cp, lease_namespace).await.expect("operator identity");
    crmrisk::run::start(&args, client).await.expect("operator starts")
}

/// Deletes a cluster-scoped policy when the test ends, also on panic.
pub struct PolicyGuard(String);
impl Drop for PolicyGuard {
    fn drop(&mut self) {
        let _ = ControlPlane::shared()
            .kubectl()
            .args(["delete", "crp", &self.0, "--ignore-not-found", "--wait=false"])
            .output();
    }
}

pub fn policy(name: &str, namespace: &str, extra: &str) -> (String, PolicyGuard) {
    let yaml = format!(
        "apiVersion: crmrisk.io/v1alpha1\nkind: CRMRiskPolicy\nmetadata:\n  name: {name}\nspec:\n  match:\n    namespaces: [{namespace}]\n  riskTolerance: 10\n{extra}"
    );
    (yaml, PolicyGuard(name.to_owned()))
}

pub async fn setup(cp: &ControlPlane, ns: &str) {
    ensure_crds(cp, &crmrisk::api::crds_yaml()).expect("CRDs installed");
    // The controller-manager creates the namespace's default ServiceAccount shortly after the
    // namespace; wait for it so the first evaluation sees the namespace as it will stay.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(cp.admin_client().await, ns);
    wait_for("default ServiceAccount", WAIT, || async { sas.get_opt("default").await.ok().flatten() }).await.unwrap();
}

pub async fn policy_status(api: &Api<CRMRiskPolicy>, name: &str) -> Option<crmrisk::api::CRMRiskPolicyStatus> {
    api.get_opt(name).await.ok().flatten().and_then(|p| p.status)
}

pub fn condition(status: &crmrisk::api::CRMRiskPolicyStatus, type_: &str) -> Option<(String, String, String)> {
    status.conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub async fn report(api: &Api<CRMRiskReport>, name: &str) -> Option<CRMRiskReport> {
    api.get_opt(name).await.ok().flatten()
}

pub fn ids(r: &CRMRiskReport) -> BTreeSet<String> {
    r.spec.findings.iter().map(|f| f.finding.id.clone()).collect()
}

/// A test namespace holding the risky example stack, and a policy that matches only it.
pub struct RiskyStack {
    pub ns: crmrisk_testbed::TestNamespace,
    pub policy: String,
    _guard: PolicyGuard,
}

/// Create the namespace (`<prefix>-...`), set up CRDs and the operator identity, apply the
/// risky stack and a policy named `<policy_prefix>-<namespace>` with `extra` spec lines (where
/// `{ns}` stands for the namespace).
pub async fn risky_stack_with_policy(
    cp: &ControlPlane,
    admin: &kube::Client,
    prefix: &str,
    policy_prefix: &str,
    extra: &str,
) -> RiskyStack {
    let ns = crmrisk_testbed::TestNamespace::create(admin, prefix).await;
    setup(cp, &ns.name).await;
    crmrisk_testbed::operator::kubectl_apply(cp, &crmrisk_testbed::operator::risky_stack(&ns.name).unwrap(), None)
        .unwrap();
    let name = format!("{policy_prefix}-{}", ns.name);
    let (yaml, guard) = policy(&name, &ns.name, &extra.replace("{ns}", &ns.name));
    crmrisk_testbed::operator::kubectl_apply(cp, &yaml, None).unwrap();
    RiskyStack { ns, policy: name, _guard: guard }
}

/// Create the Velero BackupStorageLocation `local-minio` that the risky stack's Schedule names
/// but lacks (the "fix" that clears BKP-006).
pub fn create_missing_storage_location(cp: &ControlPlane, namespace: &str) {
    crmrisk_testbed::operator::kubectl_apply(
        cp,
        &format!(
            "apiVersion: velero.io/v1\nkind: BackupStorageLocation\nmetadata: {{name: local-minio, namespace: {namespace}}}\n\
             spec: {{provider: aws, objectStorage: {{bucket: crm-backups}}, config: {{region: eu-west-1}}, accessMode: ReadWrite}}\n"
        ),
        None,
    )
    .unwrap();
}
