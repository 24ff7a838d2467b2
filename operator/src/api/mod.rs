//! The `crmrisk.io/v1alpha1` API: [`CRMRiskPolicy`] (cluster-scoped), [`CRMRiskReport`] and
//! [`CRMRiskException`] (namespaced), the status-condition helper, label-selector matching, and
//! the generated CustomResourceDefinitions (`crmrisk crd`, `crds/*.yaml`).

pub mod conditions;
pub mod exception;
pub mod policy;
pub mod report;
pub mod selector;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

pub use conditions::{find_condition, is_condition_true, set_condition};
pub use exception::{ALL_RULES, CRMRiskException, CRMRiskExceptionSpec, ExceptionWorkload};
pub use policy::{
    BackupChecks, CRMRiskPolicy, CRMRiskPolicySpec, CRMRiskPolicyStatus, Checks, ConfigMapRegoRef, CustomPolicy,
    DisasterRecoveryChecks, EncryptionChecks, MatchSpec, PolicySummary, RbacChecks, RuleOverride, TOP_FINDINGS_CAP,
    TopFinding, select_top_findings,
};
pub use report::{
    CRMRiskReport, CRMRiskReportSpec, REPORT_FINDINGS_CAP, ReportFinding, ReportPolicy, ReportSummary,
    ReportWorkloadRef, report_name,
};
pub use selector::{SelectorError, selector_matches, validate_selector};

/// API group of every crmrisk resource.
pub const GROUP: &str = "crmrisk.io";
/// The one served (and stored) version.
pub const VERSION: &str = "v1alpha1";

/// The CustomResourceDefinitions of every crmrisk resource, policy first. Use these rather than
/// `CRMRiskPolicy::crd()` & co.: the descriptions are reflowed here (see [`unwrap_descriptions`]).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![CRMRiskPolicy::crd(), CRMRiskReport::crd(), CRMRiskException::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
                unwrap_descriptions(schema);
            }
        }
    }
    crds
}

/// Doc comments are wrapped at the source's line width; `kubectl explain` wraps again, so keep
/// only paragraph breaks (blank lines) and join the other lines.
fn unwrap_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = description
            .split("\n\n")
            .map(|paragraph| paragraph.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        unwrap_descriptions(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        unwrap_descriptions(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = schema.additional_properties.as_mut() {
        unwrap_descriptions(additional);
    }
}

/// The file a CRD is kept in under `crds/`: `<group>_<plural>.yaml`, e.g.
/// `crmrisk.io_crmriskpolicies.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// One CRD as a YAML document, with a header saying where it comes from.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    // A CRD built from our own types always serializes; failing here is a bug, not bad input.
    let body = serde_yaml_ng::to_string(crd).expect("a CustomResourceDefinition serializes to YAML");
    format!("# Generated from operator/src/api by `crmrisk crd`; do not edit.\n{body}")
}

/// Every CRD as one multi-document YAML stream (each document starts with `---`), ready for
/// `kubectl apply -f -`.
pub fn crds_yaml() -> String {
    all_crds().iter().map(|crd| format!("---\n{}", crd_yaml(crd))).collect()
}
