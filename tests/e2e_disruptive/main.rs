//! End-to-end tests that disrupt the control plane itself (stop and restart the
//! kube-apiserver). A binary of their own, so they get a control plane of their own and never
//! disturb the other end-to-end tests.

#[path = "../e2e/common.rs"]
mod common;

use std::time::Duration;

use crmrisk::api::{CRMRiskPolicy, CRMRiskReport};
use crmrisk_testbed::operator::http_get;
use crmrisk_testbed::{ControlPlane, wait_for};
use kube::api::Api;

use common::{
    WAIT, create_missing_storage_location, ids, policy_status, report, risky_stack_with_policy, start_operator,
};

#[tokio::test]
async fn operator_survives_an_api_server_restart_and_converges() {
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let stack = risky_stack_with_policy(cp, &admin, "op-restart", "restart", "").await;
    let (ns, pname) = (&stack.ns, stack.policy.clone());

    let op = start_operator(cp, &ns.name, "replica-restart").await;
    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());
    wait_for("first evaluation", WAIT, || async {
        policy_status(&policies, &pname).await.filter(|s| s.summary.workloads_matched == 3)
    })
    .await
    .unwrap();
    wait_for("/readyz 200", WAIT, || async {
        (http_get(op.metrics_addr, "/readyz").await.ok()?.0 == 200).then_some(())
    })
    .await
    .unwrap();

    // The API server goes away: the operator keeps running and says it is not ready.
    cp.stop_apiserver().unwrap();
    wait_for("/readyz 503 while the API server is down", WAIT, || async {
        let (code, body) = http_get(op.metrics_addr, "/readyz").await.ok()?;
        (code == 503).then_some(body)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(http_get(op.metrics_addr, "/healthz").await.unwrap().0, 200, "alive all along");
    cp.start_apiserver().unwrap();

    // It comes back: ready again, and changes made after the restart are picked up.
    wait_for("/readyz 200 after the restart", Duration::from_secs(90), || async {
        (http_get(op.metrics_addr, "/readyz").await.ok()?.0 == 200).then_some(())
    })
    .await
    .unwrap();
    let admin = cp.admin_client().await;
    let reports: Api<CRMRiskReport> = Api::namespaced(admin.clone(), &ns.name);
    assert!(ids(&report(&reports, "statefulset-crm-db").await.unwrap()).contains("BKP-006"));
    create_missing_storage_location(cp, &ns.name);
    wait_for("the change after the restart is evaluated", Duration::from_secs(90), || async {
        report(&reports, "statefulset-crm-db").await.filter(|r| !ids(r).contains("BKP-006"))
    })
    .await
    .unwrap();
    op.stop().await;
}
