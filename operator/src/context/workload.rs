//! A normalized view of the four workload kinds, so the builder has one shape to read: the
//! differences between them (where the pod template lives, whether replicas exist, StatefulSet
//! claim templates) are settled here, once.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::error::{ContextError, display_name};
use crate::model::{WorkloadKind, WorkloadRef};

/// One Deployment, StatefulSet, DaemonSet or CronJob.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// The workload's own metadata; `namespace` is always set (`default` when the object had
    /// none, as `kubectl apply` would do).
    pub metadata: ObjectMeta,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    /// The pod template's spec (for a CronJob, the one inside its job template), kept as JSON
    /// and parsed by [`Workload::pod_spec`] once per evaluation: k8s-openapi's structs hold
    /// every optional field inline (a `Container` is 2 KB, a `Volume` 3 KB before any content),
    /// so the index's 5,000 typed pod specs took 40 MiB, as JSON a tenth of that.
    pod_spec_json: Box<str>,
    /// The ServiceAccount the pods run as (`serviceAccountName`, else the deprecated
    /// `serviceAccount`, else `default`); read by the index on every change, so kept parsed.
    pub service_account: String,
    /// The PVCs the pod template's volumes name, for the same reason.
    pub claim_names: Vec<String>,
    /// Effective replicas: `spec.replicas`, or 1 when unset; `None` for DaemonSets and CronJobs,
    /// whose pod count is not a replica setting.
    pub replicas: Option<i32>,
    /// The pod selector (`None` for CronJobs, whose Jobs select their own pods).
    pub selector: Option<LabelSelector>,
    /// StatefulSet `volumeClaimTemplates`; empty for the other kinds.
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,
}

impl Workload {
    pub fn from_deployment(d: &Deployment) -> Result<Workload, ContextError> {
        let kind = WorkloadKind::Deployment;
        let spec = d.spec.as_ref().ok_or_else(|| missing(kind, &d.metadata, "spec"))?;
        Self::assemble(kind, &d.metadata, &spec.template, Some(spec.replicas.unwrap_or(1)), Some(&spec.selector), &[])
    }

    pub fn from_stateful_set(s: &StatefulSet) -> Result<Workload, ContextError> {
        let kind = WorkloadKind::StatefulSet;
        let spec = s.spec.as_ref().ok_or_else(|| missing(kind, &s.metadata, "spec"))?;
        let templates = spec.volume_claim_templates.as_deref().unwrap_or_default();
        Self::assemble(
            kind,
            &s.metadata,
            &spec.template,
            Some(spec.replicas.unwrap_or(1)),
            Some(&spec.selector),
            templates,
        )
    }

    pub fn from_daemon_set(d: &DaemonSet) -> Result<Workload, ContextError> {
        let kind = WorkloadKind::DaemonSet;
        let spec = d.spec.as_ref().ok_or_else(|| missing(kind, &d.metadata, "spec"))?;
        Self::assemble(kind, &d.metadata, &spec.template, None, Some(&spec.selector), &[])
    }

    pub fn from_cron_job(c: &CronJob) -> Result<Workload, ContextError> {
        let kind = WorkloadKind::CronJob;
        let spec = c.spec.as_ref().ok_or_else(|| missing(kind, &c.metadata, "spec"))?;
        let job = spec.job_template.spec.as_ref().ok_or_else(|| missing(kind, &c.metadata, "spec.jobTemplate.spec"))?;
        Self::assemble(kind, &c.metadata, &job.template, None, None, &[])
    }

    fn assemble(
        kind: WorkloadKind,
        metadata: &ObjectMeta,
        template: &PodTemplateSpec,
        replicas: Option<i32>,
        selector: Option<&LabelSelector>,
        volume_claim_templates: &[PersistentVolumeClaim],
    ) -> Result<Workload, ContextError> {
        let pod_spec = template.spec.as_ref().ok_or_else(|| missing(kind, metadata, "pod template spec"))?;
        let pod_spec_json = serde_json::to_string(pod_spec)
            .map_err(|source| ContextError::Malformed {
                kind: kind.to_string(),
                name: display_name(metadata.namespace.as_deref(), metadata.name.as_deref()),
                source,
            })?
            .into_boxed_str();
        let service_account = [&pod_spec.service_account_name, &pod_spec.service_account]
            .into_iter()
            .flatten()
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| "default".to_string());
        let mut claim_names: Vec<String> = Vec::new();
        for claim in pod_spec.volumes.iter().flatten().filter_map(|v| v.persistent_volume_claim.as_ref()) {
            if !claim_names.contains(&claim.claim_name) {
                claim_names.push(claim.claim_name.clone());
            }
        }
        let mut metadata = metadata.clone();
        if metadata.namespace.as_deref().is_none_or(str::is_empty) {
            metadata.namespace = Some("default".to_string());
        }
        let pod_meta = template.metadata.as_ref();
        Ok(Workload {
            kind,
            metadata,
            pod_labels: pod_meta.and_then(|m| m.labels.clone()).unwrap_or_default(),
            pod_annotations: pod_meta.and_then(|m| m.annotations.clone()).unwrap_or_default(),
            pod_spec_json,
            service_account,
            claim_names,
            replicas,
            selector: selector.cloned(),
            volume_claim_templates: volume_claim_templates.to_vec(),
        })
    }

    /// The pod template's spec. It was serialized from a `PodSpec` when the workload was read,
    /// so it parses back; should that ever fail, the workload is assessed with an empty spec
    /// rather than panicking.
    pub fn pod_spec(&self) -> PodSpec {
        serde_json::from_str(&self.pod_spec_json).unwrap_or_else(|e| {
            tracing::error!(workload = %self.reference(), error = %e, "stored pod spec does not parse");
            PodSpec::default()
        })
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub fn uid(&self) -> Option<&str> {
        self.metadata.uid.as_deref()
    }

    /// The workload's own labels (not the pod template's).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub fn annotations(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.metadata.annotations.as_ref().unwrap_or(&EMPTY)
    }

    pub fn reference(&self) -> WorkloadRef {
        WorkloadRef { kind: self.kind, namespace: self.namespace().to_string(), name: self.name().to_string() }
    }
}

fn missing(kind: WorkloadKind, metadata: &ObjectMeta, field: &'static str) -> ContextError {
    ContextError::MissingField {
        kind: kind.to_string(),
        name: display_name(metadata.namespace.as_deref(), metadata.name.as_deref()),
        field,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn normalizes_each_kind() {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "crm", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}
        }))
        .unwrap();
        let w = Workload::from_deployment(&d).unwrap();
        assert_eq!(w.replicas, Some(1), "unset replicas = 1");
        assert_eq!(w.pod_labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(w.uid(), Some("u1"));
        assert_eq!(w.reference().to_string(), "Deployment/crm/web");

        let s: StatefulSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 3, "selector": {}, "template": {"spec": {"containers": []}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        }))
        .unwrap();
        let w = Workload::from_stateful_set(&s).unwrap();
        assert_eq!(w.replicas, Some(3));
        assert_eq!(w.namespace(), "default");
        assert_eq!(w.volume_claim_templates.len(), 1);

        let ds: DaemonSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "x"},
            "spec": {"selector": {}, "template": {"spec": {"containers": []}}}
        }))
        .unwrap();
        assert_eq!(Workload::from_daemon_set(&ds).unwrap().replicas, None);

        let c: CronJob = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "dump", "namespace": "x"},
            "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"job": "dump"}}, "spec": {"containers": []}}}}}
        }))
        .unwrap();
        let w = Workload::from_cron_job(&c).unwrap();
        assert_eq!(w.replicas, None);
        assert_eq!(w.selector, None);
        assert_eq!(w.pod_labels.get("job").map(String::as_str), Some("dump"));
    }

    #[test]
    fn missing_parts_are_errors_naming_the_object() {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "crm"}
        }))
        .unwrap();
        let err = Workload::from_deployment(&d).unwrap_err().to_string();
        assert!(err.contains("Deployment crm/web") && err.contains("spec"), "{err}");

        let c: CronJob = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "dump", "namespace": "x"},
            "spec": {"schedule": "@daily", "jobTemplate": {}}
        }))
        .unwrap();
        let err = Workload::from_cron_job(&c).unwrap_err().to_string();
        assert!(err.contains("CronJob x/dump") && err.contains("jobTemplate"), "{err}");
    }
}
