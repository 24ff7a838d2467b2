//! The one pipeline both the operator and `crmrisk scan` run for a policy and a workload:
//! match -> build context -> evaluate Rego -> score -> apply exceptions -> verdict.
//! Keeping it in one place is what makes a finding in CI the same finding in the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;

use crate::api::{CRMRiskException, CRMRiskPolicySpec, ConfigMapRegoRef};
use crate::context::{ObjectSource, Workload};
use crate::engine::{CompileError, CustomModule, EngineError, Evaluator, Input, Limits, PolicySet, PolicySetSpec};
use crate::model::{Category, WorkloadRef};
use crate::risk::{self, RuleAdjustment, ScoredFinding, ScoringInput, Verdict};

/// A CRMRiskPolicy compiled for evaluation. Immutable; rebuilt when the policy's generation
/// (or a referenced ConfigMap) changes.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    pub spec: CRMRiskPolicySpec,
    /// `spec.checks` as the Rego input's `params`, converted once.
    params: Input,
    adjustments: BTreeMap<String, RuleAdjustment>,
    set: PolicySet,
}

/// The label of a custom module in errors and in the engine.
pub fn custom_module_label(name: &str) -> String {
    format!("customPolicies[{name}]")
}

/// Resolve `spec.customPolicies` into modules. `read_config_map` fetches a ConfigMap key's
/// text (the operator reads its cache; the scanner has no cluster and says so).
pub fn custom_modules(
    spec: &CRMRiskPolicySpec,
    read_config_map: impl Fn(&ConfigMapRegoRef) -> Result<String, String>,
) -> Result<Vec<CustomModule>, Vec<CompileError>> {
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for custom in &spec.custom_policies {
        let label = custom_module_label(&custom.name);
        match (&custom.rego, &custom.config_map_ref) {
            (Some(rego), None) => modules.push(CustomModule { label, rego: rego.clone() }),
            (None, Some(cm)) => match read_config_map(cm) {
                Ok(rego) => modules.push(CustomModule { label, rego }),
                Err(e) => errors.push(CompileError::plain(&label, e)),
            },
            _ => errors.push(CompileError::plain(&label, "exactly one of `rego` and `configMapRef` must be set")),
        }
    }
    if errors.is_empty() { Ok(modules) } else { Err(errors) }
}

impl CompiledPolicy {
    /// Compile a policy: its enabled built-in areas and its custom modules.
    pub fn compile(
        name: &str,
        spec: &CRMRiskPolicySpec,
        custom: Vec<CustomModule>,
        limits: Limits,
    ) -> Result<CompiledPolicy, EngineError> {
        let categories: BTreeSet<Category> =
            Category::BUILT_IN.into_iter().filter(|c| spec.checks.category_enabled(*c)).collect();
        let set = PolicySet::compile(&PolicySetSpec { categories, custom, limits })?;
        let params = Input::new(&spec.checks, limits.max_input_bytes)?;
        let adjustments = spec
            .checks
            .rules
            .iter()
            .map(|o| (o.id.clone(), RuleAdjustment { enabled: o.enabled, likelihood: o.likelihood, impact: o.impact }))
            .collect();
        Ok(CompiledPolicy { name: name.to_owned(), spec: spec.clone(), params, adjustments, set })
    }

    /// An evaluator for one thread.
    pub fn evaluator(&self) -> Evaluator {
        self.set.evaluator()
    }

    pub fn tolerance(&self) -> u8 {
        self.spec.risk_tolerance
    }

    /// Whether the policy's `match` selects this workload (kind, namespace, labels).
    pub fn matches(&self, workload: &Workload, src: &dyn ObjectSource) -> bool {
        let ns = src.namespace(workload.namespace());
        let empty = BTreeMap::new();
        let ns_labels = ns.as_ref().and_then(|n| n.metadata.labels.as_ref()).unwrap_or(&empty);
        self.spec.match_spec.matches(workload.kind, workload.namespace(), ns_labels, workload.labels())
    }

    /// Evaluate one workload. Exceptions are those of the workload's namespace (others are
    /// ignored anyway); `now` decides expiry.
    pub fn assess(
        &self,
        evaluator: &mut Evaluator,
        workload: &Workload,
        src: &dyn ObjectSource,
        exceptions: &[Arc<CRMRiskException>],
        now: Timestamp,
    ) -> Result<Assessment, EngineError> {
        let context = crate::context::build(workload, src);
        let input = evaluator.input(&context)?.with_field("params", &self.params)?;
        let evaluation = evaluator.evaluate_input(input)?;
        let scoring = ScoringInput {
            data_classification: context.classification.data_classification,
            business_impact: context.classification.business_impact,
            adjustments: Some(&self.adjustments),
        };
        let catalog = self.set.catalog();
        let reference = workload.reference();
        let mut findings: Vec<ScoredFinding> = Vec::with_capacity(evaluation.findings.len());
        for raw in &evaluation.findings {
            let Some(mut f) = risk::score(raw, catalog, &scoring) else { continue };
            if let Some(e) =
                exceptions.iter().find(|e| e.accepts(now, &reference, workload.labels(), &self.name, &f.id))
            {
                f.accepted = true;
                f.accepted_by = Some(e.reference());
            }
            findings.push(f);
        }
        risk::sort_findings(&mut findings);
        let verdict = risk::verdict(&findings, self.tolerance());
        let mut warnings = context.warnings;
        if evaluation.truncated > 0 {
            warnings.push(format!("{} findings dropped over the per-workload limit", evaluation.truncated));
        }
        Ok(Assessment { workload: reference, policy: self.name.clone(), findings, verdict, warnings })
    }
}

/// The result of one policy on one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub workload: WorkloadRef,
    pub policy: String,
    /// Sorted: unaccepted first, then by score.
    pub findings: Vec<ScoredFinding>,
    pub verdict: Verdict,
    /// What the context builder or the engine could not use (shown, never fatal).
    pub warnings: Vec<String>,
}
