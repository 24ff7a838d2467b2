//! The Rego engine: compiles the built-in library and a policy's custom modules once (per
//! policy generation), then evaluates many workloads without re-parsing.
//!
//! Two backends run the same compiled policy. The default is regorus' register VM (RVM): the
//! policy is lowered once to bytecode and each evaluation runs it, about 3.7x faster than the
//! tree-walking interpreter on the built-in library with the same results (the equivalence is
//! tested on generated workloads and on the golden examples). The RVM does not support every
//! Rego construct yet (for example `with`); a policy set whose custom modules use one is
//! evaluated by the interpreter instead, so a platform team's Rego is never refused for it.
//!
//! Safety: regorus is built without `http` and `opa-runtime` (no network, no environment), each
//! evaluation runs under a cooperative time limit, inputs and policy sources are size-capped and
//! the number of findings a single evaluation may return is capped.

mod catalog;
mod error;
mod input;
pub mod library;
pub mod slim;
pub mod testing;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::{ExecutionTimerConfig, PolicyLengthConfig};
use serde::Deserialize;

pub use catalog::{CatalogError, RuleCatalog, RuleMeta};
pub use error::{CompileError, EngineError};
pub use input::Input;

use crate::model::Category;
use crate::risk::Evidence;

/// Package prefix every custom module must live under, so it cannot shadow the library.
pub const CUSTOM_PACKAGE_PREFIX: &str = "data.crmrisk.custom.";

/// Bounds on what a policy and an evaluation may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit of one workload's evaluation (cooperative: checked between steps).
    pub eval_timeout: Duration,
    /// Largest custom module source accepted, in bytes.
    pub max_module_bytes: usize,
    /// Largest input document accepted, in bytes of JSON.
    pub max_input_bytes: usize,
    /// Most findings one evaluation may return; the rest are dropped with a warning finding.
    pub max_findings: usize,
    /// Most VM instructions one evaluation may execute: a deterministic bound next to the
    /// wall-clock one (the built-in library needs a few thousand per workload).
    pub max_instructions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            eval_timeout: Duration::from_secs(2),
            max_module_bytes: 256 * 1024,
            max_input_bytes: 4 * 1024 * 1024,
            max_findings: 500,
            max_instructions: 20_000_000,
        }
    }
}

/// A custom Rego module of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomModule {
    /// Label used in errors, e.g. `customPolicies[deny-latest]`.
    pub label: String,
    pub rego: String,
}

/// What to compile: which built-in areas, which custom modules.
#[derive(Debug, Clone)]
pub struct PolicySetSpec {
    pub categories: BTreeSet<Category>,
    pub custom: Vec<CustomModule>,
    pub limits: Limits,
}

impl Default for PolicySetSpec {
    fn default() -> Self {
        PolicySetSpec {
            categories: Category::BUILT_IN.into_iter().collect(),
            custom: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// A finding as a rule emitted it, before scoring.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RawFinding {
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// Per-finding deviation from the rule's default likelihood.
    #[serde(default)]
    pub likelihood: Option<u8>,
    #[serde(default)]
    pub impact: Option<u8>,
}

/// Which evaluator runs a compiled policy set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// regorus' register VM: the policy lowered to bytecode once (the default).
    Vm,
    /// regorus' tree-walking interpreter: every Rego construct.
    Interpreter,
}

/// The values of `names` in `value`'s fields, or `None` when it is not an object. One pass over
/// the fields, each key matched as a `&str`: a keyed `Object::get` per name is a binary search
/// comparing `Value`s, and a finding with its evidence needs about ten of them (2 % of an
/// evaluation, BENCHMARKS.md). Other names, and non-string keys, are ignored.
fn named_fields<'a, const N: usize>(
    value: &'a regorus::Value,
    names: [&str; N],
) -> Option<[Option<&'a regorus::Value>; N]> {
    let mut found = [None; N];
    for (key, field) in value.as_object().ok()?.iter() {
        let regorus::Value::String(key) = key else { continue };
        if let Some(i) = names.iter().position(|name| *name == &**key) {
            found[i] = Some(field);
        }
    }
    Some(found)
}

impl RawFinding {
    /// Read a finding straight from the engine's value (no JSON round trip: this runs for every
    /// finding of every workload).
    fn from_value(item: &regorus::Value) -> Result<RawFinding, EngineError> {
        let malformed = |why: &str| EngineError::MalformedFinding(format!("{why}: {item}"));
        let [id, message, evidence, likelihood, impact] =
            named_fields(item, ["id", "message", "evidence", "likelihood", "impact"])
                .ok_or_else(|| malformed("a finding must be an object"))?;
        let id = match id {
            Some(regorus::Value::String(s)) => String::from(&**s),
            _ => return Err(malformed("`id` must be a string")),
        };
        let message = match message {
            Some(regorus::Value::String(s)) => String::from(&**s),
            None | Some(regorus::Value::Null) => String::new(),
            Some(_) => return Err(malformed("`message` must be a string")),
        };
        let score_part = |name: &str, value: Option<&regorus::Value>| -> Result<Option<u8>, EngineError> {
            match value {
                None | Some(regorus::Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .ok()
                    .and_then(|n| u8::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| malformed(&format!("`{name}` must be a small whole number"))),
            }
        };
        let evidence = match evidence {
            None | Some(regorus::Value::Null) => Vec::new(),
            Some(regorus::Value::Array(items)) => items
                .iter()
                .map(|e| evidence_from_value(e).ok_or_else(|| malformed(EVIDENCE_SHAPE)))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(malformed(EVIDENCE_SHAPE)),
        };
        let likelihood = score_part("likelihood", likelihood)?;
        let impact = score_part("impact", impact)?;
        Ok(RawFinding { id, message, evidence, likelihood, impact })
    }
}

const EVIDENCE_SHAPE: &str = "`evidence` must be a list of {kind, namespace (optional), name}";

/// An evidence object; `None` when it does not have the shape.
fn evidence_from_value(v: &regorus::Value) -> Option<Evidence> {
    let [kind, namespace, name] = named_fields(v, ["kind", "namespace", "name"])?;
    // Outer None: not a string or null; inner None: missing or null.
    let text = |value: Option<&regorus::Value>| match value {
        Some(regorus::Value::String(s)) => Some(Some(String::from(&**s))),
        None | Some(regorus::Value::Null) => Some(None),
        Some(_) => None,
    };
    Some(Evidence { kind: text(kind)??, namespace: text(namespace)?, name: text(name)?? })
}

/// A compiled, immutable policy set. Cheap to share (`Arc`); evaluate through an [`Evaluator`].
#[derive(Clone)]
pub struct PolicySet {
    engine: regorus::Engine,
    /// The bytecode of the entry rule, when the RVM could lower every module.
    program: Option<Arc<Program>>,
    /// `data` as the policies see it (the rule metadata), for the VM.
    data: regorus::Value,
    /// Why the VM is not used, when it is not.
    vm_unavailable: Option<String>,
    catalog: Arc<RuleCatalog>,
    limits: Limits,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("rules", &self.catalog.len())
            .field("backend", &self.backend())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Entry rule generated per policy set: one evaluation returns the findings of every area.
const ENTRY_PATH: &str = "data.crmrisk_entry.findings";

impl PolicySet {
    /// Compile the built-in library (the selected areas) and the custom modules.
    /// All compile errors are returned at once, each with its position.
    pub fn compile(spec: &PolicySetSpec) -> Result<PolicySet, EngineError> {
        let mut engine = regorus::Engine::new();
        engine.set_policy_length_config(PolicyLengthConfig {
            max_col: NonZeroU32::new(4096).unwrap_or(NonZeroU32::MIN),
            ..PolicyLengthConfig::default()
        });
        engine.set_strict_builtin_errors(false);
        let mut catalog = match library::metadata_json() {
            Some(json) => RuleCatalog::from_metadata_json(json)?,
            None => RuleCatalog::default(),
        };
        let mut errors = Vec::new();
        for (path, src) in library::modules() {
            if let Err(e) = engine.add_policy(path.to_owned(), src.to_owned()) {
                errors.push(CompileError::from_regorus(path, &e));
            }
        }
        let mut data = regorus::Value::new_object();
        if let Some(json) = library::metadata_json() {
            match regorus::Value::from_json_str(json) {
                Ok(v) => {
                    data = v.clone();
                    if let Err(e) = engine.add_data(v) {
                        errors.push(CompileError::plain("metadata.json", e.to_string()));
                    }
                }
                Err(e) => errors.push(CompileError::plain("metadata.json", e.to_string())),
            }
        }
        let mut custom_packages = Vec::new();
        for module in &spec.custom {
            if module.rego.len() > spec.limits.max_module_bytes {
                errors.push(CompileError::plain(
                    &module.label,
                    format!(
                        "module is {} bytes, over the limit of {}",
                        module.rego.len(),
                        spec.limits.max_module_bytes
                    ),
                ));
                continue;
            }
            match engine.add_policy(module.label.clone(), module.rego.clone()) {
                Ok(pkg) if pkg.starts_with(CUSTOM_PACKAGE_PREFIX) => custom_packages.push((module.label.clone(), pkg)),
                Ok(pkg) => errors.push(CompileError::plain(
                    &module.label,
                    format!("package must start with `crmrisk.custom.`, found `{}`", pkg.trim_start_matches("data.")),
                )),
                Err(e) => errors.push(CompileError::from_regorus(&module.label, &e)),
            }
        }
        if !errors.is_empty() {
            return Err(EngineError::Compile(errors));
        }

        // The entry module: one object with the findings of every enabled area.
        let mut entry = String::from("package crmrisk_entry\n\nfindings := {\n");
        for c in &spec.categories {
            if *c != Category::Custom {
                entry.push_str(&format!("  {:?}: data.crmrisk.{}.findings,\n", c.as_str(), c.package()));
            }
        }
        for (label, pkg) in &custom_packages {
            entry.push_str(&format!("  {label:?}: {pkg}.findings,\n"));
        }
        entry.push_str("}\n");
        if let Err(e) = engine.add_policy("crmrisk_entry.rego".into(), entry) {
            return Err(EngineError::Compile(vec![CompileError::from_regorus("crmrisk_entry.rego", &e)]));
        }

        // Custom modules must declare `findings` and `metadata`; read the metadata now, once.
        for (label, pkg) in &custom_packages {
            let mut errs = Vec::new();
            for rule in ["findings", "metadata"] {
                let rooted = engine.has_declared_rule_rooted_at(label, rule).unwrap_or(false);
                if !rooted {
                    errs.push(CompileError::plain(
                        label,
                        format!("module must define `{rule}` (see policies/README.md)"),
                    ));
                }
            }
            if !errs.is_empty() {
                errors.extend(errs);
                continue;
            }
            engine.set_input(regorus::Value::new_object());
            match engine.eval_rule(format!("{pkg}.metadata")) {
                Ok(v) => match serde_json::to_value(&v).and_then(serde_json::from_value) {
                    Ok(rules) => {
                        if let Err(e) = catalog.extend(rules) {
                            errors.push(CompileError::plain(label, format!("metadata: {e}")));
                        }
                    }
                    Err(e) => errors.push(CompileError::plain(label, format!("metadata is not valid: {e}"))),
                },
                Err(e) => errors.push(CompileError::from_regorus(label, &e)),
            }
        }
        if !errors.is_empty() {
            return Err(EngineError::Compile(errors));
        }
        engine.set_execution_timer_config(timer_config(&spec.limits));
        let (program, vm_unavailable) = match lower_to_vm(&mut engine) {
            Ok(program) => (Some(program), None),
            Err(why) => {
                tracing::info!(reason = %why, "policy set runs on the Rego interpreter: the VM cannot lower it");
                (None, Some(why))
            }
        };
        Ok(PolicySet { engine, program, data, vm_unavailable, catalog: Arc::new(catalog), limits: spec.limits })
    }

    /// The backend [`PolicySet::evaluator`] uses.
    pub fn backend(&self) -> Backend {
        if self.program.is_some() { Backend::Vm } else { Backend::Interpreter }
    }

    /// Why the VM could not lower this set (the interpreter runs it instead), if it could not.
    pub fn vm_unavailable(&self) -> Option<&str> {
        self.vm_unavailable.as_deref()
    }

    /// The metadata of every rule this set knows (built-in and custom).
    pub fn catalog(&self) -> &Arc<RuleCatalog> {
        &self.catalog
    }

    /// An evaluator for one thread, on the set's backend.
    pub fn evaluator(&self) -> Evaluator {
        match &self.program {
            Some(program) => self.vm_evaluator(program.clone()),
            None => self.interpreter_evaluator(),
        }
    }

    /// An evaluator on the given backend; `None` when the VM is asked for and cannot run the set.
    pub fn evaluator_on(&self, backend: Backend) -> Option<Evaluator> {
        match backend {
            Backend::Vm => self.program.clone().map(|p| self.vm_evaluator(p)),
            Backend::Interpreter => Some(self.interpreter_evaluator()),
        }
    }

    fn interpreter_evaluator(&self) -> Evaluator {
        Evaluator { vm: None, engine: Box::new(self.engine.clone()), limits: self.limits }
    }

    fn vm_evaluator(&self, program: Arc<Program>) -> Evaluator {
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.set_max_instructions(self.limits.max_instructions);
        vm.set_execution_timer_config(Some(timer_config(&self.limits)));
        // `set_data` fails only on non-object data; the interpreter is always a correct fallback.
        let vm = vm.set_data(self.data.clone()).ok().map(|()| Box::new(vm));
        Evaluator { vm, engine: Box::new(self.engine.clone()), limits: self.limits }
    }
}

fn timer_config(limits: &Limits) -> ExecutionTimerConfig {
    ExecutionTimerConfig { limit: limits.eval_timeout, check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN) }
}

/// Lower the entry rule (and everything it reaches) to RVM bytecode.
fn lower_to_vm(engine: &mut regorus::Engine) -> Result<Arc<Program>, String> {
    let entry: regorus::Rc<str> = ENTRY_PATH.into();
    let compiled = engine.compile_with_entrypoint(&entry).map_err(|e| e.to_string())?;
    // The lowering is new code in regorus: a panic in it must not take the operator down.
    let lowered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Compiler::compile_from_policy(&compiled, &[ENTRY_PATH])
    }));
    match lowered {
        Ok(Ok(mut program)) => {
            slim::slim(&mut program);
            Ok(program)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the VM compiler panicked".to_owned()),
    }
}

/// Evaluates workloads one after another against a compiled [`PolicySet`].
pub struct Evaluator {
    /// The VM, when the set runs on it; dropped should it ever panic.
    vm: Option<Box<RegoVM>>,
    /// The interpreter: the backend when there is no VM, the fallback when there is.
    engine: Box<regorus::Engine>,
    limits: Limits,
}

/// The findings of one workload, grouped by where they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub findings: Vec<RawFinding>,
    /// Findings dropped because of `Limits::max_findings`.
    pub truncated: usize,
}

impl Evaluator {
    /// Evaluate one input document (see `policies/README.md`).
    pub fn evaluate(&mut self, input: &serde_json::Value) -> Result<Evaluation, EngineError> {
        let input = self.input(input)?;
        self.evaluate_input(input)
    }

    /// Convert a document to an [`Input`] under this evaluator's size limit.
    pub fn input<T: serde::Serialize + ?Sized>(&self, doc: &T) -> Result<Input, EngineError> {
        Input::new(doc, self.limits.max_input_bytes)
    }

    /// Evaluate a converted input document, refusing it if it is over the size limit (an input
    /// that gained fields after [`Evaluator::input`] may have grown past it).
    pub fn evaluate_input(&mut self, input: Input) -> Result<Evaluation, EngineError> {
        if input.json_bytes() > self.limits.max_input_bytes {
            return Err(EngineError::InputTooLarge { size: input.json_bytes(), limit: self.limits.max_input_bytes });
        }
        self.evaluate_value(input.into_value())
    }

    /// The backend this evaluator runs on.
    pub fn backend(&self) -> Backend {
        if self.vm.is_some() { Backend::Vm } else { Backend::Interpreter }
    }

    /// Evaluate an input that is already a regorus value.
    pub fn evaluate_value(&mut self, input: regorus::Value) -> Result<Evaluation, EngineError> {
        let limits = self.limits;
        // A panic inside regorus on some input must not take the operator (or a scan) down: the
        // VM is new code, so a VM panic drops the VM and this evaluator continues on the
        // interpreter, and an interpreter panic is an evaluation error of this input.
        let mut on_vm = None;
        if let Some(vm) = &mut self.vm {
            vm.set_input(input.clone());
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.execute())) {
                Ok(executed) => on_vm = Some(executed),
                Err(_) => {
                    tracing::error!("the Rego VM panicked; this evaluator continues on the Rego interpreter");
                    self.vm = None;
                }
            }
        }
        let result = match on_vm {
            Some(executed) => executed.map_err(|e| match e {
                VmError::TimeLimitExceeded { .. } => EngineError::Timeout(limits.eval_timeout),
                VmError::InstructionLimitExceeded { limit, .. } => EngineError::InstructionLimit(limit),
                other => EngineError::Eval(other.to_string()),
            })?,
            None => {
                let engine = &mut self.engine;
                engine.set_input(input);
                let evaluated =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.eval_rule(ENTRY_PATH.to_owned())))
                        .map_err(|_| EngineError::Eval("the Rego interpreter panicked on this input".to_owned()))?;
                evaluated.map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("time limit") || msg.contains("execution exceeded") || msg.contains("timed out") {
                        EngineError::Timeout(limits.eval_timeout)
                    } else {
                        EngineError::Eval(msg)
                    }
                })?
            }
        };
        let mut eval = Evaluation::default();
        let Ok(areas) = result.as_object() else {
            return Err(EngineError::Eval(format!("entry rule returned {result}, not an object")));
        };
        for (_area, set) in areas.iter() {
            let items: Vec<&regorus::Value> = match set {
                regorus::Value::Set(s) => s.iter().collect(),
                regorus::Value::Array(a) => a.iter().collect(),
                regorus::Value::Undefined | regorus::Value::Null => continue,
                other => return Err(EngineError::MalformedFinding(format!("`findings` must be a set, got {other}"))),
            };
            for item in items {
                if eval.findings.len() >= self.limits.max_findings {
                    eval.truncated += 1;
                    continue;
                }
                eval.findings.push(RawFinding::from_value(item)?);
            }
        }
        eval.findings.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.message.cmp(&b.message)));
        Ok(eval)
    }
}
