//! The reconcile loop: a kube-runtime `Controller` for CRMRiskPolicy. Every replica keeps the
//! index warm and evaluates; only the Lease holder writes (status, reports, events).
//!
//! A policy's reconcile evaluates only its *dirty* workloads (those a change can affect, see
//! [`crate::cluster::Affected`]) or, when the policy changed or its audit interval passed, all of
//! them. Writers compare with what is already in the cluster, so a resync that changes nothing
//! writes nothing.

mod events;
mod policyreport;
mod reports;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{Instrument, info_span};

pub use reports::{MANAGED_BY, PolicyAssessment, desired_report};
pub use status::{Broken, desired_status, summarize};

use crate::api::conditions::reason as reasons;
use crate::api::{CRMRiskPolicy, CRMRiskReport};
use crate::assess::{Assessment, CompiledPolicy, custom_modules};
use crate::cluster::{ClusterIndex, Dirty};
use crate::context::Workload;
use crate::engine::{EngineError, Limits};
use crate::leader::LeaderHandle;
use crate::model::WorkloadRef;
use crate::telemetry::{Metrics, PolicyMetricsSnapshot, WriteKind};

/// Report writes in flight at once.
const REPORT_WRITERS: usize = 8;

/// Field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "crm-risk-operator";

/// Errors of one reconcile; all are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("evaluation task failed: {0}")]
    Join(String),
}

impl ReconcileError {
    fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "api",
            ReconcileError::Join(_) => "internal",
        }
    }
}

/// What the controller remembers about one policy between reconciles.
#[derive(Default)]
struct PolicyState {
    uid: String,
    generation: Option<i64>,
    /// Hash of the custom module sources (inline and ConfigMap), to notice ConfigMap edits.
    sources_hash: u64,
    /// Some custom module comes from a ConfigMap: re-read it periodically (ConfigMaps are not
    /// watched cluster-wide, which would hold every ConfigMap of the cluster in memory).
    uses_config_maps: bool,
    compiled: Option<Result<Arc<CompiledPolicy>, Broken>>,
    dirty: Dirty,
    last_full: Option<Instant>,
    /// Check every report against the assessments on the next pass (a new leader), without
    /// re-evaluating anything.
    sync_all: bool,
    /// Generation for which the compile-error Event was sent (one per generation).
    compile_event_for: Option<i64>,
    last_pass: Option<Timestamp>,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub index: Arc<ClusterIndex>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Who writes the Events (for those published without the `Recorder`).
    pub reporter: Reporter,
    pub leader: LeaderHandle,
    pub limits: Limits,
    policies: Mutex<HashMap<String, PolicyState>>,
    /// policy -> workload -> assessment.
    assessments: RwLock<HashMap<String, BTreeMap<WorkloadRef, PolicyAssessment>>>,
    /// policy -> workload -> why its last evaluation failed. The workload keeps its previous
    /// assessment (and report) until an evaluation succeeds again.
    failures: RwLock<HashMap<String, BTreeMap<WorkloadRef, String>>>,
    /// What this replica last wrote per report (namespace/name), to skip repeats before the
    /// watch shows our own write.
    written: Mutex<HashMap<(String, String), u64>>,
    policy_store: Mutex<Option<Store<CRMRiskPolicy>>>,
}

/// What one evaluation pass found for one candidate workload.
enum Evaluated {
    /// The policy does not match it.
    NotMatched,
    Assessed(Assessment),
    /// The evaluation failed (time or instruction limit, malformed finding): why.
    Failed(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Context {
    pub fn new(client: Client, index: Arc<ClusterIndex>, metrics: Arc<Metrics>, leader: LeaderHandle) -> Arc<Context> {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(crate::leader::default_identity()) };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            index,
            metrics,
            leader,
            limits: Limits::default(),
            policies: Mutex::new(HashMap::new()),
            assessments: RwLock::new(HashMap::new()),
            failures: RwLock::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            policy_store: Mutex::new(None),
        })
    }

    fn assessments_for(&self, workload: &WorkloadRef) -> BTreeMap<String, PolicyAssessment> {
        let all = self.assessments.read().unwrap_or_else(|e| e.into_inner());
        all.iter().filter_map(|(p, m)| m.get(workload).map(|a| (p.clone(), a.clone()))).collect()
    }
}

fn hash_sources(sources: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

/// Read the custom module sources of a policy (inline, or from ConfigMaps through the API).
async fn module_sources(client: &Client, policy: &CRMRiskPolicy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in &policy.spec.custom_policies {
        if let Some(cm) = &c.config_map_ref {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cm.namespace);
            let text = match api.get_opt(&cm.name).await {
                Ok(Some(map)) => map.data.and_then(|d| d.get(&cm.key).cloned()).unwrap_or_default(),
                Ok(None) => String::new(),
                Err(e) => format!("<error: {e}>"),
            };
            out.push((c.name.clone(), text));
        } else {
            out.push((c.name.clone(), c.rego.clone().unwrap_or_default()));
        }
    }
    out
}

async fn compile(client: &Client, policy: &CRMRiskPolicy, limits: Limits) -> Result<Arc<CompiledPolicy>, Broken> {
    let name = policy.name_any();
    if let Err(problems) = policy.spec.validate() {
        return Err(Broken { reason: reasons::INVALID_SPEC, message: problems.join("; ") });
    }
    // ConfigMap modules are fetched here; a missing one is a compile error with its name.
    let mut fetched: HashMap<String, Result<String, String>> = HashMap::new();
    for c in &policy.spec.custom_policies {
        if let Some(cm) = &c.config_map_ref {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cm.namespace);
            let r = match api.get_opt(&cm.name).await {
                Ok(Some(map)) => map
                    .data
                    .and_then(|d| d.get(&cm.key).cloned())
                    .ok_or_else(|| format!("ConfigMap {}/{} has no key {:?}", cm.namespace, cm.name, cm.key)),
                Ok(None) => Err(format!("ConfigMap {}/{} not found", cm.namespace, cm.name)),
                Err(e) => Err(format!("reading ConfigMap {}/{}: {e}", cm.namespace, cm.name)),
            };
            fetched.insert(c.name.clone(), r);
        }
    }
    let modules = custom_modules(&policy.spec, |cm| {
        let owner = policy.spec.custom_policies.iter().find(|c| c.config_map_ref.as_ref() == Some(cm));
        owner.and_then(|c| fetched.get(&c.name).cloned()).unwrap_or_else(|| Err("not fetched".into()))
    })
    .map_err(|errs| Broken {
        reason: reasons::POLICY_COMPILE_ERROR,
        message: errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
    })?;
    let spec = policy.spec.clone();
    let name2 = name.clone();
    // Compiling is CPU work; keep it off the async workers.
    let compiled = tokio::task::spawn_blocking(move || CompiledPolicy::compile(&name2, &spec, modules, limits))
        .await
        .map_err(|e| Broken { reason: reasons::POLICY_COMPILE_ERROR, message: e.to_string() })?;
    match compiled {
        Ok(p) => Ok(Arc::new(p)),
        Err(EngineError::Compile(errs)) => Err(Broken {
            reason: reasons::POLICY_COMPILE_ERROR,
            message: errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        }),
        Err(e) => Err(Broken { reason: reasons::POLICY_COMPILE_ERROR, message: e.to_string() }),
    }
}

/// The work of one reconcile, decided under the state lock.
struct Plan {
    compiled: Result<Arc<CompiledPolicy>, Broken>,
    full: bool,
    sync_all: bool,
    dirty: Dirty,
    send_compile_event: bool,
    next_audit: Duration,
}

async fn plan(policy: &CRMRiskPolicy, ctx: &Context) -> Plan {
    let name = policy.name_any();
    let uid = policy.uid().unwrap_or_default();
    let generation = policy.meta().generation;
    let sources = module_sources(&ctx.client, policy).await;
    let sources_hash = hash_sources(&sources);
    let needs_compile = {
        let states = lock(&ctx.policies);
        match states.get(&name) {
            Some(s) => {
                s.uid != uid || s.generation != generation || s.sources_hash != sources_hash || s.compiled.is_none()
            }
            None => true,
        }
    };
    let fresh = if needs_compile { Some(compile(&ctx.client, policy, ctx.limits).await) } else { None };
    let interval = policy.spec.audit_interval();
    let now = Timestamp::now();
    let mut states = lock(&ctx.policies);
    let state = states.entry(name.clone()).or_default();
    let mut full = false;
    if let Some(c) = fresh {
        *state = PolicyState {
            uid,
            generation,
            sources_hash,
            uses_config_maps: policy.spec.custom_policies.iter().any(|c| c.config_map_ref.is_some()),
            compiled: Some(c),
            compile_event_for: state.compile_event_for.filter(|g| Some(*g) == generation),
            last_pass: state.last_pass,
            ..Default::default()
        };
        full = true;
    }
    if state.last_full.is_none_or(|t| t.elapsed() >= interval) {
        full = true;
    }
    // Exceptions that expired since the last pass make their namespace dirty.
    if let Some(last) = state.last_pass {
        for e in ctx.index.exceptions.list() {
            let exp = e.spec.expires_at.0;
            if exp > last
                && exp <= now
                && let Some(ns) = &e.metadata.namespace
            {
                state.dirty.namespaces.insert(ns.clone());
            }
        }
    }
    state.last_pass = Some(now);
    let compiled =
        state.compiled.clone().unwrap_or_else(|| Err(Broken { reason: "Pending", message: "not compiled".into() }));
    let send_compile_event = compiled.is_err() && state.compile_event_for != generation;
    if send_compile_event {
        state.compile_event_for = generation;
    }
    if full {
        state.last_full = Some(Instant::now());
    }
    let dirty = std::mem::take(&mut state.dirty);
    // Next audit, or sooner if an exception expires before it.
    let mut next = state.last_full.map(|t| interval.saturating_sub(t.elapsed())).unwrap_or(interval);
    for e in ctx.index.exceptions.list() {
        let exp = e.spec.expires_at.0;
        if exp > now {
            let secs = (exp.as_second() - now.as_second()).max(1) as u64;
            next = next.min(Duration::from_secs(secs));
        }
    }
    let sync_all = std::mem::take(&mut state.sync_all);
    Plan { compiled, full, sync_all, dirty, send_compile_event, next_audit: next.max(Duration::from_secs(1)) }
}

/// Reconcile one policy.
pub async fn reconcile(policy: Arc<CRMRiskPolicy>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = policy.name_any();
    let span = info_span!("reconcile", policy = %name, generation = policy.meta().generation);
    async move {
        let started = Instant::now();
        if !ctx.index.core_synced() {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let plan = plan(&policy, &ctx).await;
        let result = match &plan.compiled {
            Ok(compiled) => {
                evaluate_and_write(&policy, &ctx, compiled.clone(), plan.full, plan.sync_all, &plan.dirty).await
            }
            Err(broken) => write_broken(&policy, &ctx, broken, plan.send_compile_event).await,
        };
        ctx.metrics.observe_reconcile(&name, started.elapsed());
        result?;
        Ok(Action::requeue(plan.next_audit))
    }
    .instrument(span)
    .await
}

/// A policy that cannot run: Ready=False with the reason, an Event once per generation, and
/// its old assessments dropped (their reports are rewritten without it).
async fn write_broken(
    policy: &CRMRiskPolicy,
    ctx: &Context,
    broken: &Broken,
    send_event: bool,
) -> Result<(), ReconcileError> {
    let name = policy.name_any();
    // Said once per generation (with the Event); later passes only at debug level.
    if send_event {
        tracing::warn!(reason = broken.reason, message = %broken.message, "policy cannot be evaluated");
    } else {
        tracing::debug!(reason = broken.reason, "policy still cannot be evaluated");
    }
    ctx.metrics.set_policy_ready(&name, false);
    // Per-workload failures belong to the compiled policy, which is gone.
    ctx.failures.write().unwrap_or_else(|e| e.into_inner()).remove(&name);
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let desired = desired_status(
        policy.status.as_ref(),
        policy.meta().generation,
        Err(broken),
        None,
        policy.spec.risk_tolerance,
        None,
        Timestamp::now(),
    );
    write_status(policy, ctx, desired).await?;
    if send_event {
        let r = events::policy_reference(&name, policy.uid().as_deref());
        if events::publish(
            &ctx.recorder,
            &r,
            EventType::Warning,
            events::REASON_COMPILE,
            "Compile",
            broken.message.clone(),
        )
        .await
        {
            ctx.metrics.record_api_write(WriteKind::Event);
        }
    }
    Ok(())
}

async fn write_status(
    policy: &CRMRiskPolicy,
    ctx: &Context,
    desired: crate::api::CRMRiskPolicyStatus,
) -> Result<(), ReconcileError> {
    if policy.status.as_ref() == Some(&desired) {
        return Ok(());
    }
    let api: Api<CRMRiskPolicy> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "CRMRiskPolicy",
        "status": desired,
    });
    api.patch_status(&policy.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    ctx.metrics.record_api_write(WriteKind::Status);
    Ok(())
}

async fn evaluate_and_write(
    policy: &CRMRiskPolicy,
    ctx: &Arc<Context>,
    compiled: Arc<CompiledPolicy>,
    full: bool,
    sync_all: bool,
    dirty: &Dirty,
) -> Result<(), ReconcileError> {
    let name = policy.name_any();
    // 1. Which workloads to look at.
    let candidates: Vec<Arc<Workload>> = if full { ctx.index.all_workloads() } else { ctx.index.workloads_in(dirty) };
    // Only the previous verdicts are needed (to judge transitions); a copy of the assessments
    // themselves would double their memory during every full pass.
    let previous: BTreeMap<WorkloadRef, bool> = {
        let all = ctx.assessments.read().unwrap_or_else(|e| e.into_inner());
        all.get(&name)
            .map(|m| m.iter().map(|(r, a)| (r.clone(), a.assessment.verdict.acceptable)).collect())
            .unwrap_or_default()
    };
    // Workloads that had an assessment and are in the dirty scope but no longer exist.
    let mut touched: Vec<WorkloadRef> = Vec::new();
    let in_scope =
        |w: &WorkloadRef| full || dirty.all || dirty.namespaces.contains(&w.namespace) || dirty.workloads.contains(w);

    // 2. Evaluate off the async workers.
    let index = ctx.index.clone();
    let metrics = ctx.metrics.clone();
    let c = compiled.clone();
    let cands = candidates.clone();
    let policy_name = name.clone();
    let eval_started = Instant::now();
    let results = tokio::task::spawn_blocking(move || {
        let mut evaluator = c.evaluator();
        let now = Timestamp::now();
        let mut out = Vec::with_capacity(cands.len());
        for w in cands {
            if !c.matches(&w, index.as_ref()) {
                out.push((w.reference(), Evaluated::NotMatched));
                continue;
            }
            let exceptions = index.exceptions.list_namespace(w.namespace());
            let t = Instant::now();
            let r = c.assess(&mut evaluator, &w, index.as_ref(), &exceptions, now);
            metrics.observe_evaluation(t.elapsed());
            match r {
                Ok(a) => out.push((w.reference(), Evaluated::Assessed(a))),
                Err(e) => {
                    tracing::warn!(policy = %policy_name, workload = %w.reference(), error = %e, "evaluation failed");
                    metrics.record_reconcile_error(&policy_name, "evaluation");
                    out.push((w.reference(), Evaluated::Failed(e.to_string())));
                }
            }
        }
        out
    })
    .await
    .map_err(|e| ReconcileError::Join(e.to_string()))?;
    tracing::debug!(workloads = results.len(), elapsed_ms = eval_started.elapsed().as_millis() as u64, "evaluated");

    // 3. Update the assessments and find what changed.
    let tolerance = compiled.tolerance();
    let mut transitions: Vec<(WorkloadRef, bool, Option<String>)> = Vec::new();
    // Workloads whose evaluation newly failed, for the Event.
    let mut new_failures: Vec<(WorkloadRef, String)> = Vec::new();
    {
        let mut all = ctx.assessments.write().unwrap_or_else(|e| e.into_inner());
        let mine = all.entry(name.clone()).or_default();
        let mut all_failures = ctx.failures.write().unwrap_or_else(|e| e.into_inner());
        let failed = all_failures.entry(name.clone()).or_default();
        let seen: std::collections::BTreeSet<WorkloadRef> = results.iter().map(|(r, _)| r.clone()).collect();
        for (r, a) in results {
            if !matches!(a, Evaluated::Failed(_)) {
                failed.remove(&r);
            }
            match a {
                // Nothing is lost: the previous assessment (and its report) stays as it was.
                Evaluated::Failed(why) => {
                    if failed.get(&r) != Some(&why) {
                        new_failures.push((r.clone(), why.clone()));
                    }
                    failed.insert(r, why);
                }
                Evaluated::Assessed(a) => {
                    let new = PolicyAssessment { tolerance, assessment: a };
                    let old = mine.get(&r);
                    if old != Some(&new) {
                        let was_ok = old.map(|o| o.assessment.verdict.acceptable).unwrap_or(true);
                        if was_ok != new.assessment.verdict.acceptable {
                            let top = new.assessment.findings.iter().find(|f| !f.accepted && f.score >= tolerance);
                            transitions.push((
                                r.clone(),
                                new.assessment.verdict.acceptable,
                                top.map(|f| format!("{} (score {}): {}", f.id, f.score, f.message)),
                            ));
                        }
                        touched.push(r.clone());
                        mine.insert(r, new);
                    }
                }
                Evaluated::NotMatched => {
                    if mine.remove(&r).is_some() {
                        touched.push(r);
                    }
                }
            }
        }
        // Deleted workloads in scope.
        let gone: Vec<WorkloadRef> = mine.keys().filter(|r| in_scope(r) && !seen.contains(r)).cloned().collect();
        for r in gone {
            mine.remove(&r);
            touched.push(r);
        }
        failed.retain(|r, _| !in_scope(r) || seen.contains(r));
    }
    // A restarted replica has no memory: judge transitions against the existing reports instead.
    let transitions: Vec<_> = transitions
        .into_iter()
        .filter(|(r, ok, _)| {
            let existing = ctx.index.reports.get(&r.namespace, &crate::api::report_name(r.kind, &r.name));
            let prev_ok = existing
                .as_ref()
                .and_then(|rep| rep.acceptable_by_policy.get(&name).copied())
                .or_else(|| previous.get(r).copied())
                .unwrap_or(true);
            prev_ok != *ok
        })
        .collect();

    // 4. Metrics (every replica), status/reports/events (leader only).
    let (summary, top) = {
        let all = ctx.assessments.read().unwrap_or_else(|e| e.into_inner());
        let mine = all.get(&name);
        let mut snapshot = PolicyMetricsSnapshot::default();
        for a in mine.into_iter().flat_map(|m| m.values()) {
            snapshot.add_workload(&a.assessment.workload, &a.assessment.findings, &a.assessment.verdict);
        }
        ctx.metrics.record_policy(&name, &snapshot);
        summarize(mine.into_iter().flat_map(|m| m.values()).map(|a| &a.assessment))
    };
    let (summary, first_failure) = {
        let all = ctx.failures.read().unwrap_or_else(|e| e.into_inner());
        let failed = all.get(&name);
        let mut summary = summary;
        summary.workloads_failed = failed.map_or(0, |f| f.len() as u32);
        let first = failed
            .and_then(|f| f.iter().next())
            .map(|(r, why)| format!("{} {}/{}: {why}", r.kind, r.namespace, r.name));
        (summary, first)
    };
    ctx.metrics.set_policy_ready(&name, summary.workloads_failed == 0);
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    // A full pass, or a cluster-wide change (e.g. a dashboard report CRD appeared), checks every
    // report this policy has, so a new leader, a restart or a new output format fixes drift.
    let report_scope: Vec<WorkloadRef> = if full || sync_all || dirty.all {
        let all = ctx.assessments.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<WorkloadRef> = all.get(&name).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        v.extend(touched.iter().cloned());
        v.sort();
        v.dedup();
        v
    } else {
        touched.clone()
    };
    // Several writes in flight: a first pass over thousands of workloads is bound by API
    // round trips, not by evaluation. The first error fails the reconcile (and is retried).
    let results: Vec<Result<(), ReconcileError>> = futures::stream::iter(report_scope)
        .map(|r| {
            let ctx = ctx.clone();
            async move { sync_report(&ctx, &r).await }
        })
        .buffer_unordered(REPORT_WRITERS)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    if full {
        delete_orphan_reports(ctx).await?;
    }
    let pref = events::policy_reference(&name, policy.uid().as_deref());
    let crossed: Vec<(WorkloadRef, bool)> = transitions.iter().map(|(r, ok, _)| (r.clone(), *ok)).collect();
    for (type_, reason, note) in events::policy_transition_notes(&name, tolerance, &crossed) {
        if events::publish_transition(&ctx.client, &ctx.reporter, &pref, type_, reason, note).await {
            ctx.metrics.record_api_write(WriteKind::Event);
        }
    }
    for (r, ok, top) in transitions {
        let uid = ctx.index.workload(&r).and_then(|w| w.uid().map(str::to_owned));
        let (type_, reason, note) = if ok {
            (
                EventType::Normal,
                events::REASON_WITHIN,
                format!(
                    "{} {}/{} is within the tolerance {} of policy {}",
                    r.kind, r.namespace, r.name, tolerance, name
                ),
            )
        } else {
            (
                EventType::Warning,
                events::REASON_ABOVE,
                format!(
                    "{} {}/{} is at or above the tolerance {} of policy {}: {}",
                    r.kind,
                    r.namespace,
                    r.name,
                    tolerance,
                    name,
                    top.unwrap_or_default()
                ),
            )
        };
        let wref = events::workload_reference(&r, uid.as_deref());
        if events::publish_transition(&ctx.client, &ctx.reporter, &wref, type_, reason, note).await {
            ctx.metrics.record_api_write(WriteKind::Event);
        }
    }
    for note in events::failure_notes(&name, &new_failures) {
        if events::publish(&ctx.recorder, &pref, EventType::Warning, events::REASON_EVALUATION, "Evaluate", note).await
        {
            ctx.metrics.record_api_write(WriteKind::Event);
        }
    }
    for (object, why) in ctx.index.take_invalid() {
        let note = format!("crm-risk-operator cannot read this object and skips it: {why}");
        if events::publish(&ctx.recorder, &object, EventType::Warning, events::REASON_INVALID, "Read", note).await {
            ctx.metrics.record_api_write(WriteKind::Event);
        }
    }
    let audit_time = if full { Some(Timestamp::now()) } else { None };
    let mut desired = desired_status(
        policy.status.as_ref(),
        policy.meta().generation,
        Ok((&summary, &top)),
        first_failure.as_deref(),
        tolerance,
        audit_time,
        Timestamp::now(),
    );
    // Do not write only to move lastAuditTime forward within one audit interval.
    if let (Some(cur), true) = (policy.status.as_ref(), full) {
        let mut same = desired.clone();
        same.last_audit_time = cur.last_audit_time.clone();
        let recent = cur.last_audit_time.as_ref().is_some_and(|t| {
            Timestamp::now().as_second() - t.0.as_second() < policy.spec.audit_interval().as_secs() as i64 / 2
        });
        if same == *cur && recent {
            desired = same;
        }
    }
    write_status(policy, ctx, desired).await?;
    tracing::debug!(workloads = summary.workloads_matched, at_risk = summary.workloads_at_risk, full, "reconciled");
    Ok(())
}

/// Bring one workload's reports in line with the assessments: our CRMRiskReport and, where
/// installed, the dashboard formats.
async fn sync_report(ctx: &Context, r: &WorkloadRef) -> Result<(), ReconcileError> {
    sync_crmrisk_report(ctx, r).await?;
    let (wg, open) = ctx.index.dashboard_formats();
    for (installed, format) in [(wg, policyreport::Format::WgPolicy), (open, policyreport::Format::OpenReports)] {
        if installed {
            sync_dashboard_report(ctx, r, format).await?;
        }
    }
    Ok(())
}

async fn sync_dashboard_report(
    ctx: &Context,
    r: &WorkloadRef,
    format: policyreport::Format,
) -> Result<(), ReconcileError> {
    let ar = format.api_resource();
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(ctx.client.clone(), &r.namespace, &ar);
    let name = format!("crmrisk-{}", crate::api::report_name(r.kind, &r.name));
    let store = match format {
        policyreport::Format::WgPolicy => &ctx.index.policy_reports,
        policyreport::Format::OpenReports => &ctx.index.open_reports,
    };
    let existing = store.get(&r.namespace, &name);
    let workload = ctx.index.workload(r);
    let desired = workload
        .as_deref()
        .and_then(|w| policyreport::desired(format, w, &ctx.assessments_for(r), Timestamp::now().as_second()));
    match desired {
        Some(value) => {
            if existing.as_ref().is_some_and(|e| policyreport::same(e, &value)) {
                return Ok(());
            }
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value)).await?;
            ctx.metrics.record_api_write(WriteKind::PolicyReport);
        }
        None => {
            if existing.is_some() {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => ctx.metrics.record_api_write(WriteKind::PolicyReport),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Bring one workload's CRMRiskReport in line with the assessments: create/patch, or delete.
async fn sync_crmrisk_report(ctx: &Context, r: &WorkloadRef) -> Result<(), ReconcileError> {
    let report_name = crate::api::report_name(r.kind, &r.name);
    let key = (r.namespace.clone(), report_name.clone());
    let api: Api<CRMRiskReport> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let existing = ctx.index.reports.get(&r.namespace, &report_name);
    let workload = ctx.index.workload(r);
    let desired = workload.as_deref().and_then(|w| desired_report(w, &ctx.assessments_for(r)));
    match desired {
        Some(mut report) => {
            let content = crate::cluster::content_hash(&report.spec);
            let unchanged_in_cluster = existing.as_ref().is_some_and(|e| e.content == content);
            let unchanged_written = lock(&ctx.written).get(&key) == Some(&content);
            if unchanged_in_cluster || (unchanged_written && existing.is_some()) {
                return Ok(());
            }
            tracing::debug!(report = %report_name, namespace = %r.namespace, "writing report");
            report.spec.last_evaluated = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
            let mut value = serde_json::to_value(&report).map_err(|e| ReconcileError::Join(e.to_string()))?;
            value["apiVersion"] = serde_json::json!(format!("{}/{}", crate::api::GROUP, crate::api::VERSION));
            value["kind"] = serde_json::json!("CRMRiskReport");
            api.patch(&report_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value)).await?;
            ctx.metrics.record_api_write(WriteKind::Report);
            lock(&ctx.written).insert(key, content);
        }
        None => {
            if existing.is_some() {
                match api.delete(&report_name, &DeleteParams::default()).await {
                    Ok(_) => ctx.metrics.record_api_write(WriteKind::Report),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                lock(&ctx.written).remove(&key);
            }
        }
    }
    Ok(())
}

/// Reports of ours whose workload no policy matches any more (or that no longer exists).
async fn delete_orphan_reports(ctx: &Context) -> Result<(), ReconcileError> {
    let known: std::collections::BTreeSet<(String, String)> = {
        let all = ctx.assessments.read().unwrap_or_else(|e| e.into_inner());
        all.values()
            .flat_map(|m| m.keys())
            .map(|r| (r.namespace.clone(), crate::api::report_name(r.kind, &r.name)))
            .collect()
    };
    let policies_ready = {
        let states = lock(&ctx.policies);
        states.values().all(|s| s.last_full.is_some())
    };
    if !policies_ready {
        return Ok(()); // another policy has not been evaluated yet: its reports are not orphans
    }
    for report in ctx.index.reports.list() {
        let ours = report.managed;
        let key = (report.namespace.clone(), report.name.clone());
        if ours && !known.contains(&key) {
            let api: Api<CRMRiskReport> = Api::namespaced(ctx.client.clone(), &key.0);
            match api.delete(&key.1, &DeleteParams::default()).await {
                Ok(_) => ctx.metrics.record_api_write(WriteKind::Report),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            lock(&ctx.written).remove(&key);
        }
    }
    Ok(())
}

/// Failed reconciles retry with a per-policy exponential backoff (kube-runtime has none built in).
pub fn error_policy(policy: Arc<CRMRiskPolicy>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let name = policy.name_any();
    ctx.metrics.record_reconcile_error(&name, error.reason());
    tracing::warn!(policy = %name, %error, "reconcile failed");
    let mut states = lock(&ctx.policies);
    let state = states.entry(name).or_default();
    // Retry everything that was dirty: a failed write must not be forgotten.
    state.dirty.all = true;
    Action::requeue(Duration::from_secs(5))
}

/// Forget policies that were deleted: drop their assessments, rewrite the reports they were
/// part of, remove their metrics.
async fn forget_deleted(ctx: &Arc<Context>, store: &Store<CRMRiskPolicy>) {
    let live: std::collections::BTreeSet<String> = store.state().iter().map(|p| p.name_any()).collect();
    let gone: Vec<String> = lock(&ctx.policies).keys().filter(|n| !live.contains(*n)).cloned().collect();
    for name in gone {
        tracing::info!(policy = %name, "policy deleted");
        lock(&ctx.policies).remove(&name);
        let removed = ctx.assessments.write().unwrap_or_else(|e| e.into_inner()).remove(&name);
        ctx.failures.write().unwrap_or_else(|e| e.into_inner()).remove(&name);
        ctx.metrics.forget_policy(&name);
        if ctx.leader.is_leader() {
            for r in removed.into_iter().flat_map(|m| m.into_keys()) {
                if let Err(e) = sync_report(ctx, &r).await {
                    tracing::warn!(error = %e, "could not update report after policy deletion");
                }
            }
        }
    }
}

/// Run the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<CRMRiskPolicy> = Api::all(ctx.client.clone());
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let store = controller.store();
    *lock(&ctx.policy_store) = Some(store.clone());
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::channel::<()>(1);

    // Route index changes into every policy's dirty set, then wake all policies.
    let router = {
        let ctx = ctx.clone();
        let store = store.clone();
        let mut tx = trigger_tx.clone();
        tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    d = ctx.index.next_dirty() => Some(d),
                    _ = tokio::time::sleep(Duration::from_secs(10)) => None,
                };
                // Coalesce a burst of changes into one pass.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let idle = first.is_none();
                let mut dirty = first.unwrap_or_default();
                if let Ok(more) = tokio::time::timeout(Duration::from_millis(1), ctx.index.next_dirty()).await {
                    dirty.merge(&more);
                }
                forget_deleted(&ctx, &store).await;
                let config_maps = lock(&ctx.policies).values().any(|s| s.uses_config_maps);
                if dirty.is_empty() && idle && config_maps {
                    // Idle tick: let policies with ConfigMap modules notice an edited module.
                    let _ = tx.try_send(());
                    continue;
                }
                if dirty.is_empty() {
                    continue;
                }
                {
                    let mut states = lock(&ctx.policies);
                    for s in states.values_mut() {
                        s.dirty.merge(&dirty);
                    }
                }
                let _ = tx.try_send(());
            }
        })
    };
    // A new leader re-checks everything it is now responsible for writing.
    let leader_watch = {
        let ctx = ctx.clone();
        let mut tx = trigger_tx.clone();
        let mut leader = ctx.leader.clone();
        tokio::spawn(async move {
            while let Some(is_leader) = leader.changed().await {
                ctx.metrics.set_leader(is_leader);
                if is_leader {
                    tracing::info!("became leader");
                    for s in lock(&ctx.policies).values_mut() {
                        s.sync_all = true;
                    }
                    let _ = tx.try_send(());
                } else {
                    tracing::info!("not the leader any more; writes stop");
                }
            }
        })
    };

    controller
        .reconcile_all_on(trigger_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller");
            }
        })
        .await;
    router.abort();
    leader_watch.abort();
}
