//! CRMRiskReports: one per matched workload, in its namespace, owned by the workload (so it
//! goes when the workload goes), combining every policy that matched it. Computed here (pure);
//! written by the controller only when the content changed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{CRMRiskReport, CRMRiskReportSpec, ReportFinding, ReportPolicy, ReportWorkloadRef, report_name};
use crate::assess::Assessment;
use crate::context::Workload;
use crate::model::Band;

/// Label on every report the operator manages, so it can find (and clean up) its own.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "crm-risk-operator");

/// One policy's assessment of a workload, with the tolerance it was judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAssessment {
    pub tolerance: u8,
    pub assessment: Assessment,
}

/// The report a workload should have, given every policy's assessment of it (none = no report).
pub fn desired_report(workload: &Workload, by_policy: &BTreeMap<String, PolicyAssessment>) -> Option<CRMRiskReport> {
    if by_policy.is_empty() {
        return None;
    }
    let uid = workload.uid()?.to_owned();
    let reference = workload.reference();
    let mut spec = CRMRiskReportSpec {
        workload: ReportWorkloadRef::new(reference.kind, &reference.name, &uid),
        policies: Vec::new(),
        score: 0,
        band: Band::None,
        acceptable: true,
        findings: Vec::new(),
        findings_omitted: 0,
        summary: Default::default(),
        last_evaluated: None,
    };
    let mut findings = Vec::new();
    for (name, pa) in by_policy {
        let v = &pa.assessment.verdict;
        spec.policies.push(ReportPolicy {
            name: name.clone(),
            risk_tolerance: pa.tolerance,
            score: v.score,
            band: v.band,
            acceptable: v.acceptable,
        });
        spec.score = spec.score.max(v.score);
        spec.acceptable &= v.acceptable;
        findings.extend(pa.assessment.findings.iter().cloned().map(|f| ReportFinding::new(name.clone(), f)));
    }
    spec.band = Band::of(spec.score);
    spec.set_findings(findings);
    let name = report_name(reference.kind, &reference.name);
    let labels = BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        ("crmrisk.io/workload-kind".to_owned(), reference.kind.as_str().to_owned()),
        ("crmrisk.io/workload-name".to_owned(), truncate_label(&reference.name)),
    ]);
    Some(CRMRiskReport {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(reference.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: reference.kind.api_version().to_owned(),
                kind: reference.kind.as_str().to_owned(),
                name: reference.name.clone(),
                uid,
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        spec,
    })
}

/// Label values are at most 63 characters.
fn truncate_label(s: &str) -> String {
    let mut end = s.len().min(63);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end_matches(['-', '.', '_']).to_owned()
}
