//! The operator's Prometheus metrics.
//!
//! One [`Metrics`] value owns one private [`prometheus::Registry`] (never the process-global
//! default registry), so tests can create as many as they like and nothing a dependency
//! registers leaks into `/metrics`.
//!
//! Cardinality is bounded by what is alive in the cluster: per-workload series exist only for
//! workloads the last evaluation of a policy matched ([`Metrics::record_policy`] removes the rest),
//! and every series of a deleted policy goes away with [`Metrics::forget_policy`]. Label values
//! that could grow without bound (error reasons, write kinds) are typed or `&'static str`, so
//! they can only come from the operator's own code.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::model::{Band, Category, WorkloadRef};
use crate::risk::{ScoredFinding, Verdict};

/// Buckets of `crmrisk_evaluation_duration_seconds`: one workload through context building,
/// Rego and scoring takes from tens of microseconds to, with a heavy custom policy, about a
/// second (the engine's limits stop it there).
const EVALUATION_BUCKETS: &[f64] =
    &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Buckets of `crmrisk_reconcile_duration_seconds`: a policy reconcile evaluates every matched
/// workload and writes what changed, so it spans milliseconds (quiet resync) to a minute
/// (first pass over a large cluster).
const RECONCILE_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Bands a finding can have. `Band::None` is the band of "no finding" and never counted.
const FINDING_BANDS: [Band; 4] = [Band::Low, Band::Medium, Band::High, Band::Critical];

/// What a write to the API server was for (`crmrisk_api_writes_total{kind}`).
///
/// The scale benchmark reads this counter to prove that a resync with no change in the cluster
/// writes nothing, so every writer must count each request it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    /// `CRMRiskPolicy` status patch.
    Status,
    /// `CRMRiskReport` create/patch/delete.
    Report,
    /// Kubernetes Event create/patch.
    Event,
    /// `wgpolicyk8s.io` PolicyReport or `openreports.io` Report create/patch/delete.
    PolicyReport,
}

impl WriteKind {
    pub const ALL: [WriteKind; 4] = [WriteKind::Status, WriteKind::Report, WriteKind::Event, WriteKind::PolicyReport];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Status => "status",
            WriteKind::Report => "report",
            WriteKind::Event => "event",
            WriteKind::PolicyReport => "policyreport",
        }
    }
}

/// The numbers one evaluation of one policy produced, ready to be published.
///
/// Built by the controller after it evaluated every workload the policy matches, usually with
/// [`PolicyMetricsSnapshot::add_workload`] once per workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyMetricsSnapshot {
    /// Highest finding score (0-25, 0 = no finding) of every matched workload. The key set is
    /// the set of live workloads: a workload missing here loses its series.
    pub workload_scores: BTreeMap<WorkloadRef, u8>,
    /// Open findings (not accepted by an exception) per category and band.
    pub findings: BTreeMap<(Category, Band), u64>,
    /// Findings accepted by an exception, per category.
    pub accepted: BTreeMap<Category, u64>,
    /// Workloads with an unaccepted finding at or above the policy's tolerance.
    pub above_tolerance: u64,
}

impl PolicyMetricsSnapshot {
    /// Adds one workload's scored findings and verdict.
    ///
    /// The workload's score is the verdict's (accepted findings included, as in the status and
    /// the report, so the three agree); the finding counts split accepted from open findings so
    /// an alert on `crmrisk_findings` does not fire for risk someone formally accepted.
    pub fn add_workload(&mut self, workload: &WorkloadRef, findings: &[ScoredFinding], verdict: &Verdict) {
        self.workload_scores.insert(workload.clone(), verdict.score);
        for f in findings {
            if f.accepted {
                *self.accepted.entry(f.category).or_default() += 1;
            } else {
                *self.findings.entry((f.category, f.band)).or_default() += 1;
            }
        }
        if !verdict.acceptable {
            self.above_tolerance += 1;
        }
    }
}

/// Label sets published for one policy, remembered so the next snapshot can delete the ones
/// that disappeared (the prometheus crate cannot list or partially match label sets).
#[derive(Debug, Default)]
struct PolicySeries {
    /// `[namespace, kind, workload]` of every published workload score.
    workloads: BTreeSet<[String; 3]>,
    /// `[category, band]` of every published finding count.
    findings: BTreeSet<[&'static str; 2]>,
    /// Categories of every published accepted count.
    accepted: BTreeSet<&'static str>,
    /// Reasons of every error counted for this policy.
    error_reasons: BTreeSet<&'static str>,
}

/// The operator's metrics. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    workload_risk_score: IntGaugeVec,
    findings: IntGaugeVec,
    findings_accepted: IntGaugeVec,
    workloads_above_tolerance: IntGaugeVec,
    workloads_matched: IntGaugeVec,
    policy_ready: IntGaugeVec,
    reconcile_total: IntCounterVec,
    reconcile_errors_total: IntCounterVec,
    reconcile_duration_seconds: HistogramVec,
    evaluation_duration_seconds: Histogram,
    api_writes_total: IntCounterVec,
    audit_last_run_timestamp_seconds: GaugeVec,
    leader: IntGauge,
    series: Mutex<HashMap<String, PolicySeries>>,
}

impl Metrics {
    /// Creates the metrics and registers them in a fresh registry.
    ///
    /// Fails only if a metric definition is invalid (a programming error caught by the tests),
    /// never because of anything in the cluster.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let workload_risk_score = IntGaugeVec::new(
            Opts::new(
                "crmrisk_workload_risk_score",
                "Highest risk score (likelihood x impact, 0-25) of a workload's findings under a policy.",
            ),
            &["namespace", "kind", "workload", "policy"],
        )?;
        let findings = IntGaugeVec::new(
            Opts::new("crmrisk_findings", "Open findings (not accepted by an exception) per category and band."),
            &["policy", "category", "band"],
        )?;
        let findings_accepted = IntGaugeVec::new(
            Opts::new("crmrisk_findings_accepted", "Findings accepted by a CRMRiskException, per category."),
            &["policy", "category"],
        )?;
        let workloads_above_tolerance = IntGaugeVec::new(
            Opts::new(
                "crmrisk_workloads_above_tolerance",
                "Workloads with an unaccepted finding at or above the policy's risk tolerance.",
            ),
            &["policy"],
        )?;
        let workloads_matched = IntGaugeVec::new(
            Opts::new("crmrisk_workloads_matched", "Workloads the policy's selector matches."),
            &["policy"],
        )?;
        let policy_ready = IntGaugeVec::new(
            Opts::new("crmrisk_policy_ready", "1 when the policy compiled and its last evaluation succeeded, else 0."),
            &["policy"],
        )?;
        let reconcile_total =
            IntCounterVec::new(Opts::new("crmrisk_reconcile_total", "Policy reconciles run."), &["policy"])?;
        let reconcile_errors_total = IntCounterVec::new(
            Opts::new("crmrisk_reconcile_errors_total", "Policy reconciles that failed, by reason."),
            &["policy", "reason"],
        )?;
        let reconcile_duration_seconds = HistogramVec::new(
            HistogramOpts::new("crmrisk_reconcile_duration_seconds", "Time one policy reconcile took.")
                .buckets(RECONCILE_BUCKETS.to_vec()),
            &["policy"],
        )?;
        let evaluation_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "crmrisk_evaluation_duration_seconds",
                "Time one workload evaluation (context, Rego, scoring) took.",
            )
            .buckets(EVALUATION_BUCKETS.to_vec()),
        )?;
        let api_writes_total = IntCounterVec::new(
            Opts::new("crmrisk_api_writes_total", "Write requests sent to the API server, by what they wrote."),
            &["kind"],
        )?;
        let audit_last_run_timestamp_seconds = GaugeVec::new(
            Opts::new(
                "crmrisk_audit_last_run_timestamp_seconds",
                "Unix time at which the last full evaluation of the policy finished.",
            ),
            &["policy"],
        )?;
        let leader = IntGauge::with_opts(Opts::new(
            "crmrisk_leader",
            "1 while this replica holds the leader Lease (and so is the only one writing), else 0.",
        ))?;

        registry.register(Box::new(workload_risk_score.clone()))?;
        registry.register(Box::new(findings.clone()))?;
        registry.register(Box::new(findings_accepted.clone()))?;
        registry.register(Box::new(workloads_above_tolerance.clone()))?;
        registry.register(Box::new(workloads_matched.clone()))?;
        registry.register(Box::new(policy_ready.clone()))?;
        registry.register(Box::new(reconcile_total.clone()))?;
        registry.register(Box::new(reconcile_errors_total.clone()))?;
        registry.register(Box::new(reconcile_duration_seconds.clone()))?;
        registry.register(Box::new(evaluation_duration_seconds.clone()))?;
        registry.register(Box::new(api_writes_total.clone()))?;
        registry.register(Box::new(audit_last_run_timestamp_seconds.clone()))?;
        registry.register(Box::new(leader.clone()))?;

        // Write counters start at 0 so "no writes during a quiet resync" can be read as a
        // difference from the very first scrape.
        for kind in WriteKind::ALL {
            api_writes_total.with_label_values(&[kind.as_str()]).inc_by(0);
        }

        Ok(Self {
            registry,
            workload_risk_score,
            findings,
            findings_accepted,
            workloads_above_tolerance,
            workloads_matched,
            policy_ready,
            reconcile_total,
            reconcile_errors_total,
            reconcile_duration_seconds,
            evaluation_duration_seconds,
            api_writes_total,
            audit_last_run_timestamp_seconds,
            leader,
            series: Mutex::new(HashMap::new()),
        })
    }

    /// The registry, for callers that want to register more collectors next to ours.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Publishes the result of a full evaluation of `policy`, replacing what the previous one
    /// published: series of workloads (and finding categories) no longer present are removed.
    /// Also stamps `crmrisk_audit_last_run_timestamp_seconds` with the current time.
    pub fn record_policy(&self, policy: &str, snapshot: &PolicyMetricsSnapshot) {
        let mut all = self.lock_series();
        let series = all.entry(policy.to_owned()).or_default();

        let workloads: BTreeSet<[String; 3]> = snapshot
            .workload_scores
            .keys()
            .map(|w| [w.namespace.clone(), w.kind.as_str().to_owned(), w.name.clone()])
            .collect();
        for [namespace, kind, name] in series.workloads.difference(&workloads) {
            let _ = self.workload_risk_score.remove_label_values(&[
                namespace.as_str(),
                kind.as_str(),
                name.as_str(),
                policy,
            ]);
        }
        for (w, score) in &snapshot.workload_scores {
            self.workload_risk_score
                .with_label_values(&[w.namespace.as_str(), w.kind.as_str(), w.name.as_str(), policy])
                .set(i64::from(*score));
        }
        series.workloads = workloads;

        // Built-in categories always get every band (0 when there is nothing), so dashboards and
        // alerts see an explicit 0 instead of a missing series; other categories (custom rules)
        // appear only while they have findings.
        let mut findings: BTreeMap<[&'static str; 2], u64> = BTreeMap::new();
        for category in Category::BUILT_IN {
            for band in FINDING_BANDS {
                findings.insert([category.as_str(), band.as_str()], 0);
            }
        }
        for ((category, band), count) in &snapshot.findings {
            *findings.entry([category.as_str(), band.as_str()]).or_default() += count;
        }
        for stale in series.findings.iter().filter(|k| !findings.contains_key(*k)) {
            let _ = self.findings.remove_label_values(&[policy, stale[0], stale[1]]);
        }
        for (&[category, band], count) in &findings {
            self.findings.with_label_values(&[policy, category, band]).set(saturating_i64(*count));
        }
        series.findings = findings.keys().copied().collect();

        let mut accepted: BTreeMap<&'static str, u64> = Category::BUILT_IN.iter().map(|c| (c.as_str(), 0)).collect();
        for (category, count) in &snapshot.accepted {
            *accepted.entry(category.as_str()).or_default() += count;
        }
        for stale in series.accepted.iter().filter(|k| !accepted.contains_key(*k)) {
            let _ = self.findings_accepted.remove_label_values(&[policy, *stale]);
        }
        for (&category, count) in &accepted {
            self.findings_accepted.with_label_values(&[policy, category]).set(saturating_i64(*count));
        }
        series.accepted = accepted.keys().copied().collect();

        self.workloads_above_tolerance.with_label_values(&[policy]).set(saturating_i64(snapshot.above_tolerance));
        self.workloads_matched
            .with_label_values(&[policy])
            .set(i64::try_from(snapshot.workload_scores.len()).unwrap_or(i64::MAX));
        self.audit_last_run_timestamp_seconds.with_label_values(&[policy]).set(unix_seconds(SystemTime::now()));
    }

    /// Removes every series of `policy`: call it when the policy is deleted, so a deleted
    /// policy's last numbers do not linger (and keep alerting) forever.
    pub fn forget_policy(&self, policy: &str) {
        let mut all = self.lock_series();
        let series = all.remove(policy).unwrap_or_default();
        for [namespace, kind, name] in &series.workloads {
            let _ = self.workload_risk_score.remove_label_values(&[
                namespace.as_str(),
                kind.as_str(),
                name.as_str(),
                policy,
            ]);
        }
        for &[category, band] in &series.findings {
            let _ = self.findings.remove_label_values(&[policy, category, band]);
        }
        for &category in &series.accepted {
            let _ = self.findings_accepted.remove_label_values(&[policy, category]);
        }
        for &reason in &series.error_reasons {
            let _ = self.reconcile_errors_total.remove_label_values(&[policy, reason]);
        }
        // Series that exist for every known policy; `remove` fails harmlessly if one was never set.
        let _ = self.workloads_above_tolerance.remove_label_values(&[policy]);
        let _ = self.workloads_matched.remove_label_values(&[policy]);
        let _ = self.policy_ready.remove_label_values(&[policy]);
        let _ = self.reconcile_total.remove_label_values(&[policy]);
        let _ = self.reconcile_duration_seconds.remove_label_values(&[policy]);
        let _ = self.audit_last_run_timestamp_seconds.remove_label_values(&[policy]);
    }

    /// Sets `crmrisk_policy_ready{policy}` (mirror of the policy's Ready condition).
    pub fn set_policy_ready(&self, policy: &str, ready: bool) {
        self.policy_ready.with_label_values(&[policy]).set(i64::from(ready));
    }

    /// Counts one finished reconcile of `policy` and its duration (successful or not; failures
    /// are additionally counted by [`Metrics::record_reconcile_error`]).
    pub fn observe_reconcile(&self, policy: &str, duration: Duration) {
        self.reconcile_total.with_label_values(&[policy]).inc();
        self.reconcile_duration_seconds.with_label_values(&[policy]).observe(duration.as_secs_f64());
    }

    /// Counts a failed reconcile. `reason` is a short fixed word from the operator's code
    /// (`"compile"`, `"list"`, `"write"`, ...), `&'static str` so error messages (which embed
    /// names and would explode cardinality) cannot become label values.
    pub fn record_reconcile_error(&self, policy: &str, reason: &'static str) {
        self.reconcile_errors_total.with_label_values(&[policy, reason]).inc();
        self.lock_series().entry(policy.to_owned()).or_default().error_reasons.insert(reason);
    }

    /// Records how long one workload evaluation took.
    pub fn observe_evaluation(&self, duration: Duration) {
        self.evaluation_duration_seconds.observe(duration.as_secs_f64());
    }

    /// Counts one write request sent to the API server.
    pub fn record_api_write(&self, kind: WriteKind) {
        self.api_writes_total.with_label_values(&[kind.as_str()]).inc();
    }

    /// Total writes of `kind` so far (for tests and the scale benchmark).
    pub fn api_writes(&self, kind: WriteKind) -> u64 {
        self.api_writes_total.with_label_values(&[kind.as_str()]).get()
    }

    /// Sets `crmrisk_leader` (call it from the leader election's change notifications).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// All metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            // Only possible with a broken metric family; say so in the scrape instead of failing it.
            tracing::warn!(error = %e, "could not encode metrics");
            out.push_str(&format!("# encoding error: {e}\n"));
        }
        out
    }

    /// The series bookkeeping. A panic while holding the lock cannot leave it inconsistent in a
    /// way that matters (worst case a stale series survives until the next snapshot), so a
    /// poisoned lock is simply taken over.
    fn lock_series(&self) -> MutexGuard<'_, HashMap<String, PolicySeries>> {
        self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_kinds_have_distinct_labels() {
        let labels: BTreeSet<_> = WriteKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), WriteKind::ALL.len());
    }

    #[test]
    fn buckets_are_sorted_and_span_the_documented_range() {
        assert!(EVALUATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(RECONCILE_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(EVALUATION_BUCKETS.first(), Some(&0.000_05));
        assert_eq!(EVALUATION_BUCKETS.last(), Some(&1.0));
    }
}
