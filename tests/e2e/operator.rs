//! The operator end to end on the real control plane, running as a ServiceAccount bound to
//! nothing but the chart's RBAC files: status, reports, Events, metrics, convergence on fixes,
//! exceptions, broken Rego, leader election.

use std::collections::BTreeSet;
use std::time::Duration;

use crmrisk::api::{CRMRiskPolicy, CRMRiskReport};
use crmrisk::run::Running;
use crmrisk_testbed::operator::{http_get, kubectl, kubectl_apply, risky_stack};

use crate::common::{
    SERIAL, WAIT, condition, create_missing_storage_location, ids, policy, policy_status, report,
    risky_stack_with_policy, setup, start_operator,
};
use crmrisk_testbed::{ControlPlane, TestNamespace, wait_for};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn operator_reports_risk_converges_on_fixes_and_honours_exceptions() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let ns = TestNamespace::create(&admin, "op-risky").await;
    setup(cp, &ns.name).await;
    kubectl_apply(cp, &risky_stack(&ns.name).unwrap(), None).expect("risky stack applies");
    let pname = format!("e2e-{}", ns.name);
    let (yaml, _guard) = policy(&pname, &ns.name, "");
    kubectl_apply(cp, &yaml, None).unwrap();

    let op = start_operator(cp, &ns.name, "replica-a").await;
    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());
    let reports: Api<CRMRiskReport> = Api::namespaced(admin.clone(), &ns.name);

    // Status: Ready, three workloads matched, all above tolerance.
    let status = wait_for("policy status with 3 workloads", WAIT, || async {
        policy_status(&policies, &pname).await.filter(|s| s.summary.workloads_matched == 3)
    })
    .await
    .unwrap();
    assert_eq!(condition(&status, "Ready").map(|c| c.0), Some("True".into()), "{status:?}");
    let risk = condition(&status, "RiskWithinTolerance").unwrap();
    assert_eq!((risk.0.as_str(), risk.1.as_str()), ("False", "RiskAboveTolerance"), "{risk:?}");
    assert_eq!(status.summary.workloads_at_risk, 3);
    assert!(!status.top_findings.is_empty());
    let categories: BTreeSet<&str> = status.summary.findings_by_category.keys().map(String::as_str).collect();
    for c in ["encryption", "backups", "rbac", "disasterRecovery"] {
        assert!(categories.contains(c), "findings in {c}: {categories:?}");
    }

    // Reports: one per workload, owned by it, with findings.
    for name in ["deployment-crm-web", "statefulset-crm-db", "deployment-crm-cache"] {
        let r = wait_for(&format!("report {name}"), WAIT, || async { report(&reports, name).await }).await.unwrap();
        assert!(!r.spec.acceptable);
        assert!(!r.spec.findings.is_empty());
        let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.name, name.split_once('-').unwrap().1);
    }
    let db = report(&reports, "statefulset-crm-db").await.unwrap();
    assert!(ids(&db).contains("BKP-006"), "missing storage location is reported: {:?}", ids(&db));
    let db_score_before = db.spec.score;

    // Events on the workload.
    let events: Api<CoreEvent> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("RiskAboveTolerance event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("RiskAboveTolerance"))
    })
    .await
    .unwrap();

    // Metrics.
    let (code, body) = http_get(op.metrics_addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let line = format!(
        "crmrisk_workload_risk_score{{kind=\"StatefulSet\",namespace=\"{}\",policy=\"{pname}\",workload=\"crm-db\"}}",
        ns.name
    );
    assert!(body.contains(&line), "metrics have {line}:\n{body}");
    assert!(body.contains(&format!("crmrisk_workloads_above_tolerance{{policy=\"{pname}\"}} 3")));
    wait_for("/readyz 200", WAIT, || async {
        (http_get(op.metrics_addr, "/readyz").await.ok()?.0 == 200).then_some(())
    })
    .await
    .unwrap();

    // Nothing changes: nothing is written (no write storm on resync/requeue).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = |body: &str| -> u64 {
        body.lines()
            .filter(|l| l.starts_with("crmrisk_api_writes_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let before = writes(&http_get(op.metrics_addr, "/metrics").await.unwrap().1);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = writes(&http_get(op.metrics_addr, "/metrics").await.unwrap().1);
    assert_eq!(before, after, "writes while nothing changed");

    // Fix one thing: the Schedule's storage location now exists -> BKP-006 disappears, score drops.
    create_missing_storage_location(cp, &ns.name);
    let db = wait_for("BKP-006 gone from the crm-db report", WAIT, || async {
        report(&reports, "statefulset-crm-db").await.filter(|r| !ids(r).contains("BKP-006"))
    })
    .await
    .unwrap();
    assert!(db.spec.score < db_score_before, "score dropped: {} -> {}", db_score_before, db.spec.score);

    // Scale crm-web to 2: "too few replicas" (DR-001) goes, "no PodDisruptionBudget" (DR-002)
    // appears; then add the PDB and DR-002 goes too.
    kubectl(cp, &["scale", "deployment", "crm-web", "--replicas=2", "-n", &ns.name]).unwrap();
    wait_for("DR-001 gone and DR-002 present on crm-web", WAIT, || async {
        report(&reports, "deployment-crm-web").await.filter(|r| !ids(r).contains("DR-001") && ids(r).contains("DR-002"))
    })
    .await
    .unwrap();
    kubectl_apply(
        cp,
        &format!("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: crm-web, namespace: {}}}\nspec: {{maxUnavailable: 1, selector: {{matchLabels: {{app: crm-web}}}}}}\n", ns.name),
        None,
    )
    .unwrap();
    wait_for("DR-002 gone after adding the PDB", WAIT, || async {
        report(&reports, "deployment-crm-web").await.filter(|r| !ids(r).contains("DR-002"))
    })
    .await
    .unwrap();

    // An exception accepts a finding: it stays visible, marked accepted.
    let accepted_id = report(&reports, "deployment-crm-web").await.unwrap().spec.findings[0].finding.id.clone();
    kubectl_apply(
        cp,
        &format!(
            "apiVersion: crmrisk.io/v1alpha1\nkind: CRMRiskException\nmetadata: {{name: web-accepted, namespace: {}}}\n\
             spec: {{workloads: [{{kind: Deployment, name: crm-web}}], rules: [{accepted_id}], reason: \"accepted until the migration in Q1\", approvedBy: ciso@example.com, expiresAt: \"2099-01-01T00:00:00Z\"}}\n",
            ns.name
        ),
        None,
    )
    .unwrap();
    let web = wait_for("finding accepted", WAIT, || async {
        report(&reports, "deployment-crm-web")
            .await
            .filter(|r| r.spec.findings.iter().any(|f| f.finding.id == accepted_id && f.finding.accepted))
    })
    .await
    .unwrap();
    let f = web.spec.findings.iter().find(|f| f.finding.id == accepted_id).unwrap();
    assert_eq!(f.finding.accepted_by.as_deref(), Some(format!("{}/web-accepted", ns.name).as_str()));

    // Delete a workload: its report goes.
    kubectl(cp, &["delete", "deployment", "crm-cache", "-n", &ns.name]).unwrap();
    wait_for("report of the deleted workload gone", WAIT, || async {
        match reports.get_opt("deployment-crm-cache").await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await
    .unwrap();
    wait_for("status counts 2 workloads", WAIT, || async {
        policy_status(&policies, &pname).await.filter(|s| s.summary.workloads_matched == 2)
    })
    .await
    .unwrap();
    op.stop().await;
}

#[tokio::test]
async fn broken_rego_sets_ready_false_with_position_and_recovers() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let ns = TestNamespace::create(&admin, "op-rego").await;
    setup(cp, &ns.name).await;
    kubectl_apply(cp, &risky_stack(&ns.name).unwrap(), None).unwrap();
    let good_name = format!("good-{}", ns.name);
    let (good, _g1) = policy(&good_name, &ns.name, "");
    kubectl_apply(cp, &good, None).unwrap();
    let bad_name = format!("custom-{}", ns.name);
    let module = |body: &str| {
        format!(
            "  customPolicies:\n  - name: pinned\n    rego: |\n      package crmrisk.custom.pinned\n\n      metadata := {{\"IMG-001\": {{\"title\": \"t\", \"category\": \"custom\", \"control\": \"prevention\", \"objective\": \"integrity\", \"likelihood\": 3, \"impact\": 3}}}}\n\n      findings contains {{\"id\": \"IMG-001\", \"message\": \"m\"}} if {{\n        {body}\n      }}\n"
        )
    };
    let (bad, _g2) =
        policy(&bad_name, &ns.name, &module("some c in input.containers\n        endswith(c.image, \":latest\"\n"));
    kubectl_apply(cp, &bad, None).unwrap();

    let op = start_operator(cp, &ns.name, "replica-rego").await;
    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());
    let status = wait_for("Ready=False on the broken policy", WAIT, || async {
        policy_status(&policies, &bad_name).await.filter(|s| condition(s, "Ready").is_some_and(|c| c.0 == "False"))
    })
    .await
    .unwrap();
    let (_, reason, message) = condition(&status, "Ready").unwrap();
    assert_eq!(reason, "PolicyCompileError");
    assert!(message.contains("customPolicies[pinned]:"), "names the module: {message}");
    assert!(message.chars().any(|c| c.is_ascii_digit()), "has a line number: {message}");
    // The other policy still runs.
    wait_for("the good policy evaluated", WAIT, || async {
        policy_status(&policies, &good_name).await.filter(|s| s.summary.workloads_matched == 3)
    })
    .await
    .unwrap();
    // A Warning event on the policy.
    let events: Api<CoreEvent> = Api::namespaced(admin.clone(), "default");
    wait_for("PolicyCompileError event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("PolicyCompileError")
                && e.involved_object.name.as_deref() == Some(bad_name.as_str())
        })
    })
    .await
    .unwrap();

    // Fix the Rego: Ready=True.
    let (fixed, _g3) =
        policy(&bad_name, &ns.name, &module("some c in input.containers\n        endswith(c.image, \":latest\")\n"));
    kubectl_apply(cp, &fixed, None).unwrap();
    wait_for("Ready=True after the fix", WAIT, || async {
        policy_status(&policies, &bad_name).await.filter(|s| condition(s, "Ready").is_some_and(|c| c.0 == "True"))
    })
    .await
    .unwrap();
    op.stop().await;
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_only_it_writes() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let stack = risky_stack_with_policy(cp, &admin, "op-ha", "ha", "").await;
    let (ns, pname) = (&stack.ns, stack.policy.clone());

    let a = start_operator(cp, &ns.name, "replica-a").await;
    let b = start_operator(cp, &ns.name, "replica-b").await;
    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());
    wait_for("status written", WAIT, || async {
        policy_status(&policies, &pname).await.filter(|s| s.summary.workloads_matched == 3)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leaders = [a.leader.is_leader(), b.leader.is_leader()];
    assert_eq!(leaders.iter().filter(|l| **l).count(), 1, "exactly one leader: {leaders:?}");
    let status_writes = |r: &Running| r.metrics.api_writes(crmrisk::telemetry::WriteKind::Status);
    let report_writes = |r: &Running| r.metrics.api_writes(crmrisk::telemetry::WriteKind::Report);
    let (leader, follower) = if a.leader.is_leader() { (&a, &b) } else { (&b, &a) };
    assert!(status_writes(leader) >= 1);
    assert_eq!(status_writes(follower), 0, "the follower never writes status");
    assert_eq!(report_writes(follower), 0, "the follower never writes reports");
    assert!(report_writes(leader) >= 3, "the leader wrote the reports");
    // Each report was written once (its generation would grow with every content change).
    let reports: Api<CRMRiskReport> = Api::namespaced(admin.clone(), &ns.name);
    let list = reports.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 3);
    for r in &list.items {
        assert_eq!(
            r.metadata.generation,
            Some(1),
            "{} written more than once",
            r.metadata.name.as_deref().unwrap_or_default()
        );
    }

    // The leader stops: the other takes over (the Lease is released on shutdown).
    let (leader, follower) = if a.leader.is_leader() { (a, b) } else { (b, a) };
    leader.stop().await;
    wait_for("the follower takes over", WAIT, || async { follower.leader.is_leader().then_some(()) }).await.unwrap();
    follower.stop().await;
}

#[tokio::test]
async fn policy_reports_for_existing_dashboards_appear_when_their_crds_are_installed() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let stack = risky_stack_with_policy(cp, &admin, "op-polr", "polr", "").await;
    let (ns, pname) = (&stack.ns, stack.policy.clone());
    let op = start_operator(cp, &ns.name, "replica-polr").await;

    // The CRDs arrive while the operator runs: discovery finds them without a restart.
    let crds = std::fs::read_to_string(crmrisk_testbed::repo_root().join("examples/crds/policy-reports.yaml")).unwrap();
    kubectl_apply(cp, &crds, None).unwrap();
    kubectl(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/policyreports.wgpolicyk8s.io",
            "crd/reports.openreports.io",
        ],
    )
    .unwrap();

    for (resource, kind) in [("policyreports.wgpolicyk8s.io", "PolicyReport"), ("reports.openreports.io", "Report")] {
        let text = wait_for(&format!("{kind} for crm-db"), WAIT, || async {
            let out =
                kubectl(cp, &["get", resource, "crmrisk-statefulset-crm-db", "-n", &ns.name, "-o", "json"]).ok()?;
            Some(out)
        })
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["scope"]["kind"], "StatefulSet", "scoped to the workload, not a ReplicaSet/pod");
        assert_eq!(v["scope"]["name"], "crm-db");
        assert!(v["summary"]["fail"].as_u64().unwrap() > 0);
        let results = v["results"].as_array().unwrap();
        assert!(!results.is_empty() && results.len() <= 100);
        let r = &results[0];
        assert_eq!(r["source"], "crm-risk-operator");
        assert_eq!(r["policy"], pname.as_str());
        for key in ["severity", "category", "message"] {
            assert!(r[key].is_string(), "{key} is set: {r}");
        }
        for key in ["likelihood", "impact", "score", "resultID"] {
            assert!(r["properties"][key].is_string(), "properties.{key} is a string: {r}");
        }
    }
    // Nothing changed: nothing is rewritten.
    let before = op.metrics.api_writes(crmrisk::telemetry::WriteKind::PolicyReport);
    assert!(before >= 6, "3 workloads x 2 formats written, got {before}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(op.metrics.api_writes(crmrisk::telemetry::WriteKind::PolicyReport), before);
    op.stop().await;
}

#[tokio::test]
async fn custom_policy_from_a_configmap_waits_for_it_and_follows_its_edits() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let extra =
        "  customPolicies:\n  - name: tags\n    configMapRef: {name: crm-rules, namespace: {ns}, key: policy.rego}\n";
    let stack = risky_stack_with_policy(cp, &admin, "op-cm", "cm", extra).await;
    let (ns, pname) = (&stack.ns, stack.policy.clone());
    let op = start_operator(cp, &ns.name, "replica-cm").await;
    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());

    // The ConfigMap is missing: a clear condition, not a crash.
    let s = wait_for("Ready=False while the ConfigMap is missing", WAIT, || async {
        policy_status(&policies, &pname).await.filter(|s| condition(s, "Ready").is_some_and(|c| c.0 == "False"))
    })
    .await
    .unwrap();
    let message = condition(&s, "Ready").unwrap().2;
    assert!(message.contains("crm-rules") && message.contains("not found"), "{message}");

    // It appears: the module compiles and its findings show up.
    let module = |tag: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: crm-rules, namespace: {}}}\ndata:\n  policy.rego: |\n    package crmrisk.custom.tags\n    metadata := {{\"TAG-001\": {{\"title\": \"Image tag\", \"category\": \"custom\", \"control\": \"prevention\", \"objective\": \"integrity\", \"likelihood\": 3, \"impact\": 3}}}}\n    findings contains {{\"id\": \"TAG-001\", \"message\": sprintf(\"image %s\", [c.image])}} if {{\n      some c in input.containers\n      contains(c.image, \"{tag}\")\n    }}\n",
            ns.name
        )
    };
    kubectl_apply(cp, &module(":2.3.1"), None).unwrap();
    let reports: Api<CRMRiskReport> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("TAG-001 on crm-web", WAIT, || async {
        report(&reports, "deployment-crm-web").await.filter(|r| ids(r).contains("TAG-001"))
    })
    .await
    .unwrap();
    // The module is edited: the finding follows, without touching the policy.
    kubectl_apply(cp, &module(":no-such-tag"), None).unwrap();
    wait_for("TAG-001 gone after the edit", WAIT, || async {
        report(&reports, "deployment-crm-web").await.filter(|r| !ids(r).contains("TAG-001"))
    })
    .await
    .unwrap();
    op.stop().await;
}

#[tokio::test]
async fn a_workload_whose_evaluation_fails_keeps_its_report_and_the_policy_says_so() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let admin = cp.admin_client().await;
    let module = |body: &str| {
        format!(
            "  customPolicies:\n  - name: heavy\n    rego: |\n      package crmrisk.custom.heavy\n\n      metadata := {{\"HEAVY-001\": {{\"title\": \"t\", \"category\": \"custom\", \"control\": \"detection\", \"objective\": \"integrity\", \"likelihood\": 1, \"impact\": 1}}}}\n\n      findings contains {{\"id\": \"HEAVY-001\", \"message\": \"m\"}} if {{\n        {body}\n      }}\n"
        )
    };
    let cheap = module("input.workload.kind == \"Deployment\"\n        input.workload.name == \"never\"");
    let stack = risky_stack_with_policy(cp, &admin, "op-evalfail", "heavy", &cheap).await;
    let (ns, pname) = (stack.ns.name.clone(), stack.policy.clone());
    let op = start_operator(cp, &ns, "replica-evalfail").await;
    let policies: Api<CRMRiskPolicy> = Api::all(admin.clone());
    let reports: Api<CRMRiskReport> = Api::namespaced(admin.clone(), &ns);
    wait_for("the policy evaluated 3 workloads", WAIT, || async {
        policy_status(&policies, &pname)
            .await
            .filter(|s| s.summary.workloads_matched == 3 && condition(s, "Ready").is_some_and(|c| c.0 == "True"))
    })
    .await
    .unwrap();
    let db_before = wait_for("report of the database", WAIT, || async { report(&reports, "statefulset-crm-db").await })
        .await
        .unwrap();
    assert!(!ids(&db_before).is_empty());

    // Only the StatefulSet's evaluation runs into the instruction limit (10^8 iterations).
    let heavy = module(
        "input.workload.kind == \"StatefulSet\"\n        some i in numbers.range(1, 10000)\n        some j in numbers.range(1, 10000)\n        i * j == -1",
    );
    let (yaml, _g) = policy(&pname, &ns, &heavy);
    kubectl_apply(cp, &yaml, None).unwrap();
    let status = wait_for("Ready=False with EvaluationFailed", WAIT, || async {
        policy_status(&policies, &pname)
            .await
            .filter(|s| condition(s, "Ready").is_some_and(|c| c.0 == "False" && c.1 == "EvaluationFailed"))
    })
    .await
    .unwrap();
    let (_, _, message) = condition(&status, "Ready").unwrap();
    assert!(message.contains("StatefulSet") && message.contains("crm-db"), "names the workload: {message}");
    assert!(message.contains("instructions") || message.contains("time limit"), "says why: {message}");
    assert_eq!(status.summary.workloads_failed, 1, "{status:?}");
    // The other workloads were evaluated; the database keeps its last report.
    assert_eq!(status.summary.workloads_matched, 3, "{status:?}");
    let db_now = report(&reports, "statefulset-crm-db").await.expect("the database's report is kept");
    assert_eq!(ids(&db_now), ids(&db_before));
    let events: Api<CoreEvent> = Api::namespaced(admin.clone(), "default");
    wait_for("EvaluationFailed event on the policy", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("EvaluationFailed") && e.involved_object.name.as_deref() == Some(pname.as_str())
        })
    })
    .await
    .unwrap();

    // Back to a cheap module: Ready=True, nothing failed.
    let (yaml, _g2) = policy(&pname, &ns, &cheap);
    kubectl_apply(cp, &yaml, None).unwrap();
    wait_for("Ready=True again", WAIT, || async {
        policy_status(&policies, &pname)
            .await
            .filter(|s| s.summary.workloads_failed == 0 && condition(s, "Ready").is_some_and(|c| c.0 == "True"))
    })
    .await
    .unwrap();
    op.stop().await;
}
