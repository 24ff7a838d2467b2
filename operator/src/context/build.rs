//! Assembling the document: one pass over the workload, a handful of namespace-scoped lookups.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;

use super::backup::backup;
use super::containers::{containers, is_database, secret_names};
use super::document::{
    Classification, ClassificationSource, NamespaceInfo, ServiceAccountInfo, WorkloadContext, WorkloadInfo,
};
use super::network::{self, ingresses, mesh, network_policies, pod_disruption_budgets, services};
use super::objects::ObjectSource;
use super::rbac::rbac;
use super::storage::storage;
use super::workload::Workload;
use crate::model::{BusinessImpact, DataClassification};

/// Build the input document for `workload` from what `src` knows. Never fails: missing objects
/// show up as `found: false`, unreadable values as `null` plus a `warnings` entry, so one broken
/// object cannot hide a workload from evaluation.
pub fn build(workload: &Workload, src: &dyn ObjectSource) -> WorkloadContext {
    let mut warnings = Vec::new();
    let ns_name = workload.namespace();
    let namespace = src.namespace(ns_name);
    let pod_spec = workload.pod_spec();

    let services = services(workload, src);
    let ingresses = ingresses(ns_name, &services, src);
    let sa_name = &workload.service_account;
    let is_database = is_database(&pod_spec);
    let containers = containers(&pod_spec);
    let secrets = secret_names(&pod_spec);
    let service_account = service_account(workload, pod_spec.automount_service_account_token, sa_name, src);
    let backup = backup(workload, &pod_spec, src, &mut warnings);

    WorkloadContext {
        workload: WorkloadInfo {
            api_version: workload.kind.api_version().to_string(),
            kind: workload.kind,
            namespace: ns_name.to_string(),
            name: workload.name().to_string(),
            labels: workload.labels().clone(),
            annotations: network::without_last_applied(Some(workload.annotations())),
            replicas: workload.replicas,
            pod_labels: workload.pod_labels.clone(),
            pod_annotations: workload.pod_annotations.clone(),
            pod_spec,
            is_database,
        },
        namespace: NamespaceInfo {
            name: ns_name.to_string(),
            found: namespace.is_some(),
            labels: namespace.as_ref().and_then(|n| n.metadata.labels.clone()).unwrap_or_default(),
            annotations: network::without_last_applied(
                namespace.as_ref().and_then(|n| n.metadata.annotations.as_ref()),
            ),
        },
        classification: classification(workload, namespace.as_deref(), &mut warnings),
        containers,
        service_account,
        rbac: rbac(ns_name, sa_name, src),
        storage: storage(workload, src),
        secrets,
        services,
        ingresses,
        network_policies: network_policies(workload, src),
        pod_disruption_budgets: pod_disruption_budgets(workload, src),
        mesh: mesh(workload, namespace.as_ref(), src, &mut warnings),
        backup,
        warnings,
    }
}

/// `pod_automount`: the pod spec's `automountServiceAccountToken`, which overrides the
/// ServiceAccount's.
fn service_account(
    w: &Workload,
    pod_automount: Option<bool>,
    name: &str,
    src: &dyn ObjectSource,
) -> ServiceAccountInfo {
    let sa = src.service_account(w.namespace(), name);
    let automount =
        pod_automount.or_else(|| sa.as_ref().and_then(|sa| sa.automount_service_account_token)).unwrap_or(true);
    ServiceAccountInfo {
        name: name.to_string(),
        found: sa.is_some(),
        is_default: name == "default",
        automount_token: automount,
    }
}

/// Each label is read from the workload, else from its namespace. An invalid value is reported
/// and skipped, so the namespace's value (if any) applies instead: a typo on a workload should
/// not silently drop a namespace-wide classification.
fn classification(w: &Workload, namespace: Option<&Namespace>, warnings: &mut Vec<String>) -> Classification {
    let data = classification_label(DataClassification::LABEL, DataClassification::parse, w, namespace, warnings);
    let impact = classification_label(BusinessImpact::LABEL, BusinessImpact::parse, w, namespace, warnings);
    let sources = [data.as_ref().map(|d| d.1), impact.as_ref().map(|i| i.1)];
    let source = if sources.contains(&Some(ClassificationSource::Workload)) {
        Some(ClassificationSource::Workload)
    } else if sources.contains(&Some(ClassificationSource::Namespace)) {
        Some(ClassificationSource::Namespace)
    } else {
        None
    };
    Classification { data_classification: data.map(|d| d.0), business_impact: impact.map(|i| i.0), source }
}

/// The first valid value of `label` on the workload, then on the namespace.
fn classification_label<T>(
    label: &str,
    parse: fn(&str) -> Option<T>,
    w: &Workload,
    namespace: Option<&Namespace>,
    warnings: &mut Vec<String>,
) -> Option<(T, ClassificationSource)> {
    let levels: [(Option<&BTreeMap<String, String>>, ClassificationSource); 2] = [
        (Some(w.labels()), ClassificationSource::Workload),
        (namespace.and_then(|n| n.metadata.labels.as_ref()), ClassificationSource::Namespace),
    ];
    for (labels, source) in levels {
        let Some(value) = labels.and_then(|l| l.get(label)) else { continue };
        match parse(value) {
            Some(parsed) => return Some((parsed, source)),
            None => {
                let owner = match source {
                    ClassificationSource::Workload => w.reference().to_string(),
                    ClassificationSource::Namespace => format!("Namespace {}", w.namespace()),
                };
                warnings.push(format!("{owner} has an invalid {label} label {value:?}; ignored"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::context::ObjectSet;

    fn set_with(workload_labels: serde_json::Value, ns_labels: serde_json::Value) -> ObjectSet {
        ObjectSet::from_values([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "crm", "labels": ns_labels}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "crm", "labels": workload_labels},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "crm/api"}]}}}}),
        ])
        .unwrap()
    }

    #[test]
    fn classification_prefers_workload_then_namespace() {
        let s = set_with(
            json!({"crmrisk.io/data-classification": "restricted"}),
            json!({"crmrisk.io/data-classification": "internal", "crmrisk.io/business-impact": "high"}),
        );
        let ctx = build(&s.workloads()[0], &s);
        assert_eq!(ctx.classification.data_classification, Some(DataClassification::Restricted));
        assert_eq!(ctx.classification.business_impact, Some(BusinessImpact::High));
        assert_eq!(ctx.classification.source, Some(ClassificationSource::Workload));

        let s = set_with(json!({}), json!({"crmrisk.io/business-impact": "critical"}));
        let ctx = build(&s.workloads()[0], &s);
        assert_eq!(ctx.classification.data_classification, None);
        assert_eq!(ctx.classification.business_impact, Some(BusinessImpact::Critical));
        assert_eq!(ctx.classification.source, Some(ClassificationSource::Namespace));

        let s = set_with(json!({}), json!({}));
        let ctx = build(&s.workloads()[0], &s);
        assert_eq!(ctx.classification.source, None);
    }

    #[test]
    fn invalid_classification_values_become_null_with_a_warning() {
        let s = set_with(json!({"crmrisk.io/data-classification": "top-secret"}), json!({}));
        let ctx = build(&s.workloads()[0], &s);
        assert_eq!(ctx.classification.data_classification, None);
        assert_eq!(ctx.classification.source, None);
        assert_eq!(ctx.warnings.len(), 1);
        assert!(
            ctx.warnings[0].contains("top-secret") && ctx.warnings[0].contains("Deployment/crm/api"),
            "{:?}",
            ctx.warnings
        );
    }

    #[test]
    fn automount_token_pod_spec_overrides_service_account() {
        let cases = [
            (None, None, true),
            (None, Some(false), false),
            (Some(true), Some(false), true),
            (Some(false), None, false),
        ];
        for (pod, sa, expected) in cases {
            let mut sa_obj =
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "crm"}});
            if let Some(b) = sa {
                sa_obj["automountServiceAccountToken"] = json!(b);
            }
            let mut spec = json!({"serviceAccountName": "app", "containers": []});
            if let Some(b) = pod {
                spec["automountServiceAccountToken"] = json!(b);
            }
            let s = ObjectSet::from_values([
                sa_obj,
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "crm"},
                    "spec": {"selector": {}, "template": {"spec": spec}}}),
            ])
            .unwrap();
            let ctx = build(&s.workloads()[0], &s);
            assert_eq!(ctx.service_account.automount_token, expected, "pod {pod:?} sa {sa:?}");
            assert!(ctx.service_account.found && !ctx.service_account.is_default);
        }
    }

    #[test]
    fn unset_service_account_is_default() {
        let s = set_with(json!({}), json!({}));
        let ctx = build(&s.workloads()[0], &s);
        assert_eq!(ctx.service_account.name, "default");
        assert!(ctx.service_account.is_default && !ctx.service_account.found && ctx.service_account.automount_token);
    }
}
