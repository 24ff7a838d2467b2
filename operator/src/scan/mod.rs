//! `crmrisk scan`: the offline scanner. Reads manifests, builds the same contexts as the
//! operator (from the objects in the files only), evaluates the same policies, and reports.

pub mod load;
pub mod output;

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use crate::api::{CRMRiskException, CRMRiskPolicy, CRMRiskPolicySpec};
use crate::assess::{CompiledPolicy, custom_modules};
use crate::context::{Inserted, ObjectSet, ObjectSource};
use crate::engine::{EngineError, Limits};
use crate::model::{Band, WorkloadKind};
use crate::risk::ScoredFinding;

pub use load::InputError;

/// What to scan and with what.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Files, directories or `-`.
    pub inputs: Vec<PathBuf>,
    /// Files holding CRMRiskPolicy documents; none = the default policy (all built-in checks).
    pub policies: Vec<PathBuf>,
    /// Treat Velero as installed even if no Velero object is in the inputs.
    pub assume_velero: bool,
    /// Treat CloudNativePG as installed even if no CNPG object is in the inputs.
    pub assume_cnpg: bool,
    /// Evaluation time (exception expiry); now when `None`.
    pub now: Option<Timestamp>,
}

/// The `-o json` document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    pub workloads: Vec<WorkloadResult>,
    pub errors: Vec<InputError>,
}

/// One workload's result over every policy that matched it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadResult {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub score: u8,
    pub band: Band,
    pub acceptable: bool,
    pub policies: Vec<PolicyResult>,
    pub findings: Vec<FindingResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResult {
    pub name: String,
    pub risk_tolerance: u8,
    pub score: u8,
    pub acceptable: bool,
}

/// A finding in scan output: the scored finding plus the policy that produced it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingResult {
    pub policy: String,
    #[serde(flatten)]
    pub finding: ScoredFinding,
    /// Where the workload was defined (`file#document`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// At or above the policy's tolerance.
    pub above_tolerance: bool,
}

impl FindingResult {
    fn new(policy: &str, finding: ScoredFinding, tolerance: u8, source: Option<String>) -> FindingResult {
        FindingResult { above_tolerance: finding.score >= tolerance, policy: policy.to_owned(), finding, source }
    }
}

/// Scan output reads like the scored finding it wraps (`f.id`, `f.score`, ...).
impl std::ops::Deref for FindingResult {
    type Target = ScoredFinding;
    fn deref(&self) -> &ScoredFinding {
        &self.finding
    }
}

/// Exit status of a scan, as documented for pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every workload is within tolerance.
    Acceptable = 0,
    /// Some workload has an unaccepted finding at or above its policy's tolerance.
    AboveTolerance = 1,
    /// Some input or policy could not be read (everything readable was still reported).
    InputError = 2,
}

impl ScanReport {
    pub fn outcome(&self) -> Outcome {
        if !self.errors.is_empty() {
            Outcome::InputError
        } else if self.workloads.iter().any(|w| !w.acceptable) {
            Outcome::AboveTolerance
        } else {
            Outcome::Acceptable
        }
    }
}

/// The policy used when `--policy` is not given: every built-in check with its defaults.
pub fn default_policy() -> (String, CRMRiskPolicySpec) {
    ("default".to_owned(), CRMRiskPolicySpec::default())
}

fn load_policies(paths: &[PathBuf], errors: &mut Vec<InputError>) -> Vec<(String, CRMRiskPolicySpec)> {
    if paths.is_empty() {
        return vec![default_policy()];
    }
    let loaded = load::load(paths);
    errors.extend(loaded.errors);
    let mut policies = Vec::new();
    for doc in loaded.documents {
        if doc.value.get("kind").and_then(|k| k.as_str()) != Some("CRMRiskPolicy") {
            errors.push(InputError { source: doc.source, message: "not a CRMRiskPolicy (crmrisk.io/v1alpha1)".into() });
            continue;
        }
        match serde_json::from_value::<CRMRiskPolicy>(doc.value) {
            Ok(p) => {
                let name = p.metadata.name.clone().unwrap_or_else(|| "unnamed".into());
                if let Err(problems) = p.spec.validate() {
                    errors.push(InputError {
                        source: doc.source,
                        message: format!("policy {name}: {}", problems.join("; ")),
                    });
                    continue;
                }
                policies.push((name, p.spec));
            }
            Err(e) => errors.push(InputError { source: doc.source, message: format!("malformed CRMRiskPolicy: {e}") }),
        }
    }
    policies
}

/// Run a scan. Never fails as a whole: every problem becomes an entry in `errors`.
pub fn scan(options: &ScanOptions) -> ScanReport {
    let mut report = ScanReport::default();
    let now = options.now.unwrap_or_else(Timestamp::now);

    let policies = load_policies(&options.policies, &mut report.errors);
    let mut compiled = Vec::new();
    for (name, spec) in policies {
        let modules = match custom_modules(&spec, |cm| {
            Err(format!(
                "configMapRef {}/{} cannot be read offline; inline the module with `rego` to scan it",
                cm.namespace, cm.name
            ))
        }) {
            Ok(m) => m,
            Err(errs) => {
                for e in errs {
                    report.errors.push(InputError { source: format!("policy {name}"), message: e.to_string() });
                }
                continue;
            }
        };
        match CompiledPolicy::compile(&name, &spec, modules, Limits::default()) {
            Ok(p) => compiled.push(p),
            Err(EngineError::Compile(errs)) => {
                for e in errs {
                    report.errors.push(InputError { source: format!("policy {name}"), message: e.to_string() });
                }
            }
            Err(e) => report.errors.push(InputError { source: format!("policy {name}"), message: e.to_string() }),
        }
    }

    let loaded = load::load(&options.inputs);
    report.errors.extend(loaded.errors);
    let mut objects = ObjectSet::new();
    let mut exceptions: Vec<Arc<CRMRiskException>> = Vec::new();
    let mut sources = std::collections::HashMap::new();
    for doc in loaded.documents {
        if doc.value.get("kind").and_then(|k| k.as_str()) == Some("CRMRiskException") {
            match serde_json::from_value::<CRMRiskException>(doc.value) {
                Ok(mut e) => {
                    e.metadata.namespace.get_or_insert_with(|| "default".to_owned());
                    exceptions.push(Arc::new(e));
                }
                Err(e) => report
                    .errors
                    .push(InputError { source: doc.source, message: format!("malformed CRMRiskException: {e}") }),
            }
            continue;
        }
        match objects.insert_value(doc.value) {
            Ok(Inserted::Workload(r)) => {
                sources.insert(r, doc.source);
            }
            Ok(_) => {}
            Err(e) => report.errors.push(InputError { source: doc.source, message: e.to_string() }),
        }
    }
    if options.assume_velero {
        objects.set_velero_installed(true);
    }
    if options.assume_cnpg {
        objects.set_cnpg_installed(true);
    }

    let mut evaluators: Vec<_> = compiled.iter().map(|p| p.evaluator()).collect();
    for workload in objects.workloads() {
        let reference = workload.reference();
        let source = sources.get(&reference).cloned();
        let mut result: Option<WorkloadResult> = None;
        for (policy, evaluator) in compiled.iter().zip(evaluators.iter_mut()) {
            if !policy.matches(workload, &objects as &dyn ObjectSource) {
                continue;
            }
            let ns_exceptions: Vec<_> = exceptions
                .iter()
                .filter(|e| e.metadata.namespace.as_deref() == Some(workload.namespace()))
                .cloned()
                .collect();
            let r = result.get_or_insert_with(|| WorkloadResult {
                kind: reference.kind,
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
                score: 0,
                band: Band::None,
                acceptable: true,
                policies: Vec::new(),
                findings: Vec::new(),
                warnings: Vec::new(),
            });
            match policy.assess(evaluator, workload, &objects, &ns_exceptions, now) {
                Ok(a) => {
                    r.score = r.score.max(a.verdict.score);
                    r.acceptable &= a.verdict.acceptable;
                    r.policies.push(PolicyResult {
                        name: policy.name.clone(),
                        risk_tolerance: policy.tolerance(),
                        score: a.verdict.score,
                        acceptable: a.verdict.acceptable,
                    });
                    for w in a.warnings {
                        if !r.warnings.contains(&w) {
                            r.warnings.push(w);
                        }
                    }
                    r.findings.extend(
                        a.findings
                            .into_iter()
                            .map(|f| FindingResult::new(&policy.name, f, policy.tolerance(), source.clone())),
                    );
                }
                Err(e) => report.errors.push(InputError {
                    source: source.clone().unwrap_or_else(|| reference.to_string()),
                    message: format!("policy {} on {reference}: {e}", policy.name),
                }),
            }
        }
        if let Some(mut r) = result {
            r.band = Band::of(r.score);
            r.findings
                .sort_by(|a, b| a.accepted.cmp(&b.accepted).then(b.score.cmp(&a.score)).then_with(|| a.id.cmp(&b.id)));
            report.workloads.push(r);
        }
    }
    report.workloads.sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    report
}
