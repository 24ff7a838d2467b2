//! The test bed itself behaves like a real cluster: controllers run, RBAC is enforced,
//! garbage collection works.

use std::time::Duration;

use crmrisk_testbed::{ControlPlane, TestNamespace, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "web", "image": "registry.example/crm-web:1.0" }] }
            }
        }
    }))
    .expect("deployment object")
}

#[tokio::test]
async fn controller_manager_creates_replicaset_for_deployment() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    let ns = TestNamespace::create(&client, "testbed-rs").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let created = deployments.create(&PostParams::default(), &deployment("crm-web")).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let rs = wait_for("the ReplicaSet of crm-web", Duration::from_secs(60), || async {
        let list = replicasets.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.kind == "Deployment" && o.controller == Some(true))
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}; see {}", cp.log_path("kube-controller-manager").display()));
    assert_eq!(rs.spec.and_then(|s| s.replicas), Some(1));
}

#[tokio::test]
async fn non_admin_identity_is_forbidden_to_list_deployments() {
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let ns = TestNamespace::create(&admin, "testbed-rbac").await;

    // The admin can list: the namespace and the API are there.
    Api::<Deployment>::namespaced(admin, &ns.name).list(&ListParams::default()).await.unwrap();

    let nobody = cp.nobody_client().await;
    for api in [Api::<Deployment>::namespaced(nobody.clone(), &ns.name), Api::<Deployment>::all(nobody)] {
        match api.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 403, "expected 403 Forbidden, got {status:?}");
                assert!(status.message.contains(&cp.nobody_user), "message names the user: {}", status.message);
            }
            other => panic!("expected 403 Forbidden for {}, got {other:?}", cp.nobody_user),
        }
    }
}

#[tokio::test]
async fn owner_referenced_configmap_is_garbage_collected() {
    let cp = ControlPlane::shared();
    let client = cp.admin_client().await;
    let ns = TestNamespace::create(&client, "testbed-gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let owner: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "owner" }
    }))
    .unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let dependent: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.metadata.uid.clone().unwrap()
            }]
        }
    }))
    .unwrap();
    cms.create(&PostParams::default(), &dependent).await.unwrap();
    // Sanity: the dependent exists before the owner goes, so the test can fail.
    assert!(cms.get_opt("dependent").await.unwrap().is_some());

    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    wait_for("garbage collection of the dependent ConfigMap", Duration::from_secs(60), || async {
        match cms.get_opt("dependent").await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}; see {}", cp.log_path("kube-controller-manager").display()));
}
