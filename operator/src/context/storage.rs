//! The workload's persistent storage and the StorageClasses behind it (where "is the data
//! encrypted at rest" is decided).

use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;

use super::document::{ClaimInfo, ClaimSource, Storage, StorageClassInfo};
use super::objects::ObjectSource;
use super::workload::Workload;

const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] =
    ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"];
/// The pre-`storageClassName` way to pick a class, still honoured by the API server.
const LEGACY_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// PVCs named by pod volumes, then (StatefulSets) the `volumeClaimTemplates`, each with its
/// effective StorageClass.
pub(crate) fn storage(w: &Workload, src: &dyn ObjectSource) -> Storage {
    let namespace = w.namespace();
    let mut default_class: Option<Option<Arc<StorageClass>>> = None;
    let mut default = || default_class.get_or_insert_with(|| default_storage_class(src)).clone();
    let mut claims: Vec<ClaimInfo> = Vec::new();

    for claim_name in &w.claim_names {
        let (found, class_name) = match src.pvc(namespace, claim_name) {
            Some(pvc) => (true, class_name(&pvc, &mut default)),
            None => (false, None),
        };
        claims.push(claim_info(claim_name, ClaimSource::Volume, found, class_name, src));
    }
    for template in &w.volume_claim_templates {
        let name = template.metadata.name.clone().unwrap_or_default();
        let class_name = class_name(template, &mut default);
        claims.push(claim_info(&name, ClaimSource::VolumeClaimTemplate, true, class_name, src));
    }
    Storage { claims }
}

/// The class a claim gets: its own (annotation first, as the API server reads it), the default
/// class when unset, and none for `""`, which explicitly asks for a pre-provisioned volume without
/// a class (the default class is not applied to it).
fn class_name(pvc: &PersistentVolumeClaim, default: &mut dyn FnMut() -> Option<Arc<StorageClass>>) -> Option<String> {
    let annotated = pvc.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
    let explicit = annotated.or(pvc.spec.as_ref().and_then(|s| s.storage_class_name.as_ref()));
    match explicit {
        Some(name) if name.is_empty() => None,
        Some(name) => Some(name.clone()),
        None => default().and_then(|sc| sc.metadata.name.clone()),
    }
}

fn claim_info(
    name: &str,
    source: ClaimSource,
    found: bool,
    class_name: Option<String>,
    src: &dyn ObjectSource,
) -> ClaimInfo {
    let storage_class = class_name.as_ref().map(|n| match src.storage_class(n) {
        Some(sc) => StorageClassInfo {
            name: n.clone(),
            found: true,
            is_default: is_default(&sc),
            provisioner: Some(sc.provisioner.clone()),
            parameters: sc.parameters.clone().unwrap_or_default(),
        },
        None => StorageClassInfo {
            name: n.clone(),
            found: false,
            is_default: false,
            provisioner: None,
            parameters: Default::default(),
        },
    });
    ClaimInfo { name: name.to_string(), source, found, storage_class_name: class_name, storage_class }
}

fn is_default(sc: &StorageClass) -> bool {
    let annotations = sc.metadata.annotations.as_ref();
    DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| annotations.and_then(|m| m.get(*a)).is_some_and(|v| v == "true"))
}

/// The cluster's default StorageClass. With several defaults the API server picks the most
/// recently created one; so do we (then the name, for a deterministic answer from manifests
/// without timestamps).
pub(crate) fn default_storage_class(src: &dyn ObjectSource) -> Option<Arc<StorageClass>> {
    src.storage_classes().into_iter().filter(|sc| is_default(sc)).max_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.name).cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::context::ObjectSet;

    fn class(name: &str, default: bool, created: &str) -> serde_json::Value {
        let mut annotations = json!({});
        if default {
            annotations = json!({"storageclass.kubernetes.io/is-default-class": "true"});
        }
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
            "provisioner": "ebs.csi.aws.com", "parameters": {"encrypted": "true"}})
    }

    #[test]
    fn default_storage_class_is_the_newest_annotated_one() {
        let set = ObjectSet::from_values([
            class("old-default", true, "2023-01-01T00:00:00Z"),
            class("new-default", true, "2024-01-01T00:00:00Z"),
            class("plain", false, "2025-01-01T00:00:00Z"),
        ])
        .unwrap();
        assert_eq!(default_storage_class(&set).unwrap().metadata.name.as_deref(), Some("new-default"));

        let none = ObjectSet::from_values([class("plain", false, "2025-01-01T00:00:00Z")]).unwrap();
        assert!(default_storage_class(&none).is_none());
    }

    #[test]
    fn claims_resolve_their_class_with_defaulting() {
        let set = ObjectSet::from_values([
            class("gp3", true, "2024-01-01T00:00:00Z"),
            class("fast", false, "2024-01-01T00:00:00Z"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "unset", "namespace": "crm"}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "fast", "namespace": "crm"},
                "spec": {"storageClassName": "fast"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "static", "namespace": "crm"},
                "spec": {"storageClassName": ""}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "ghost-class", "namespace": "crm"},
                "spec": {"storageClassName": "ghost"}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "crm"},
                "spec": {"selector": {}, "template": {"spec": {"containers": [], "volumes": [
                    {"name": "a", "persistentVolumeClaim": {"claimName": "unset"}},
                    {"name": "b", "persistentVolumeClaim": {"claimName": "fast"}},
                    {"name": "c", "persistentVolumeClaim": {"claimName": "static"}},
                    {"name": "d", "persistentVolumeClaim": {"claimName": "ghost-class"}},
                    {"name": "e", "persistentVolumeClaim": {"claimName": "missing"}},
                    {"name": "f", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
        ])
        .unwrap();
        let s = storage(&set.workloads()[0], &set);
        let summary: Vec<_> = s
            .claims
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.found,
                    c.storage_class_name.as_deref(),
                    c.storage_class.as_ref().map(|sc| (sc.found, sc.is_default)),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("unset", true, Some("gp3"), Some((true, true))),
                ("fast", true, Some("fast"), Some((true, false))),
                ("static", true, None, None),
                ("ghost-class", true, Some("ghost"), Some((false, false))),
                ("missing", false, None, None),
                ("data", true, Some("gp3"), Some((true, true))),
            ]
        );
        assert_eq!(s.claims[5].source, ClaimSource::VolumeClaimTemplate);
        assert_eq!(
            s.claims[0].storage_class.as_ref().unwrap().parameters.get("encrypted").map(String::as_str),
            Some("true")
        );
    }
}
