//! `CRMRiskPolicy` (cluster-scoped): which workloads to audit, which checks to run with which
//! parameters, the risk tolerance, and custom Rego. The status summarises the last audit.
//!
//! Every spec field has a default, so `spec: {}` is a complete policy with every built-in check
//! on. `spec.checks` is handed to the Rego library as `input.params` (see `policies/README.md`),
//! so its field names are a contract with the Rego rules.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::selector::{selector_matches, validate_selector};
use crate::model::{Band, Category, WorkloadKind, WorkloadRef};
use crate::risk::ScoredFinding;

/// Default `spec.riskTolerance`.
pub const DEFAULT_RISK_TOLERANCE: u8 = 10;
/// Default `spec.auditInterval`.
pub const DEFAULT_AUDIT_INTERVAL: &str = "10m";
/// Shortest audit interval honoured; shorter values are raised to this.
pub const MIN_AUDIT_INTERVAL: Duration = Duration::from_secs(30);
/// Longest audit interval honoured; longer values are lowered to this.
pub const MAX_AUDIT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// At most this many findings are listed in `status.topFindings` (the summary counts them all;
/// the per-workload CRMRiskReports list them in full).
pub const TOP_FINDINGS_CAP: usize = 20;
/// Workload kinds matched when `spec.match.kinds` is not set.
pub const DEFAULT_KINDS: [WorkloadKind; 2] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];

const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DURATION_PATTERN: &str = "^([0-9]+(s|m|h))+$";
/// A namespace name, or a prefix followed by `*` (`crm-*`), or `*` alone.
const NAMESPACE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?|[a-z0-9-]*\*)$";

fn default_risk_tolerance() -> u8 {
    DEFAULT_RISK_TOLERANCE
}

fn default_audit_interval() -> String {
    DEFAULT_AUDIT_INTERVAL.to_string()
}

fn default_config_map_key() -> String {
    "policy.rego".to_string()
}

/// A CRMRiskPolicy audits the CRM workloads it matches for encryption, backup, RBAC and
/// disaster-recovery risks, scores each finding (likelihood x impact, 1-25) and reports the
/// workloads whose unaccepted findings reach the risk tolerance. `spec: {}` is a complete
/// policy with every built-in check on.
// One `printcolumn(...)` per column repeats `type_ = ...`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "crmrisk.io",
    version = "v1alpha1",
    kind = "CRMRiskPolicy",
    plural = "crmriskpolicies",
    singular = "crmriskpolicy",
    shortname = "crp",
    category = "crmrisk",
    status = "CRMRiskPolicyStatus",
    derive = "PartialEq",
    doc = "CRMRiskPolicy audits the CRM workloads it matches for encryption, backup, RBAC and disaster-recovery risks and reports those whose risk reaches its tolerance.",
    printcolumn(name = "Tolerance", type_ = "integer", json_path = ".spec.riskTolerance"),
    printcolumn(name = "Workloads", type_ = "integer", json_path = ".status.summary.workloadsMatched"),
    printcolumn(name = "At Risk", type_ = "integer", json_path = ".status.summary.workloadsAtRisk"),
    printcolumn(name = "Max Score", type_ = "integer", json_path = ".status.summary.maxScore"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CRMRiskPolicySpec {
    /// Which workloads this policy audits. Omitted: Deployments and StatefulSets in every
    /// namespace.
    #[serde(default, rename = "match")]
    pub match_spec: MatchSpec,

    /// A workload is at risk when one of its unaccepted findings scores at least this much
    /// (score = likelihood x impact, 1-25; bands: low 1-4, medium 5-9, high 10-16,
    /// critical 20-25). Default 10: high and critical findings put a workload at risk.
    #[serde(default = "default_risk_tolerance")]
    #[schemars(range(min = 1, max = 25))]
    pub risk_tolerance: u8,

    /// Built-in checks and their parameters, passed to the Rego rules as `input.params`. Every
    /// check is on by default.
    #[serde(default)]
    pub checks: Checks,

    /// Extra Rego modules evaluated beside the built-in library. Each defines `findings` and
    /// `metadata` in a package under `crmrisk.custom.` (see policies/README.md).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub custom_policies: Vec<CustomPolicy>,

    /// How often every matched workload is re-audited, besides the re-evaluation triggered by
    /// changes. A Go-style duration of whole seconds, minutes and hours, e.g. `30s`, `10m`,
    /// `1h30m`. Values below 30s are raised to 30s and values above 24h lowered to 24h.
    #[serde(default = "default_audit_interval")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    pub audit_interval: String,
}

impl Default for CRMRiskPolicySpec {
    fn default() -> Self {
        Self {
            match_spec: MatchSpec::default(),
            risk_tolerance: DEFAULT_RISK_TOLERANCE,
            checks: Checks::default(),
            custom_policies: Vec::new(),
            audit_interval: default_audit_interval(),
        }
    }
}

impl CRMRiskPolicySpec {
    /// `auditInterval` as a duration, clamped to [`MIN_AUDIT_INTERVAL`, `MAX_AUDIT_INTERVAL`].
    /// An unparsable value (only possible when the schema was bypassed, e.g. a policy file read
    /// by `crmrisk scan`) gives the default, 10 minutes.
    pub fn audit_interval(&self) -> Duration {
        parse_duration(&self.audit_interval)
            .unwrap_or(Duration::from_secs(600))
            .clamp(MIN_AUDIT_INTERVAL, MAX_AUDIT_INTERVAL)
    }

    /// Checks what the CRD schema checks (and the selectors, which it cannot), for policies
    /// that did not come through the apiserver (`crmrisk scan -p policy.yaml`) and for the
    /// `Ready` condition. Returns one message per problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(1..=25).contains(&self.risk_tolerance) {
            problems.push(format!("riskTolerance {} is outside 1-25", self.risk_tolerance));
        }
        if parse_duration(&self.audit_interval).is_none() {
            problems.push(format!("auditInterval {:?} is not a duration like 30s, 10m or 1h30m", self.audit_interval));
        }
        for (field, selector) in [
            ("match.namespaceSelector", &self.match_spec.namespace_selector),
            ("match.workloadSelector", &self.match_spec.workload_selector),
        ] {
            if let Some(selector) = selector
                && let Err(e) = validate_selector(selector)
            {
                problems.push(format!("{field}: {e}"));
            }
        }
        for rule in &self.checks.rules {
            if rule.id.is_empty() {
                problems.push("checks.rules: empty id".to_string());
            }
            for (field, value) in [("likelihood", rule.likelihood), ("impact", rule.impact)] {
                if let Some(v) = value
                    && !(1..=5).contains(&v)
                {
                    problems.push(format!("checks.rules[{}].{field} {v} is outside 1-5", rule.id));
                }
            }
        }
        if has_duplicates(self.checks.rules.iter().map(|r| r.id.as_str())) {
            problems.push("checks.rules: duplicate id".to_string());
        }
        for custom in &self.custom_policies {
            if !is_dns_label(&custom.name) {
                problems.push(format!("customPolicies: name {:?} is not a DNS label", custom.name));
            }
            if custom.rego.is_some() == custom.config_map_ref.is_some() {
                problems.push(format!("customPolicies[{}]: set exactly one of rego or configMapRef", custom.name));
            }
        }
        if has_duplicates(self.custom_policies.iter().map(|c| c.name.as_str())) {
            problems.push("customPolicies: duplicate name".to_string());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

fn has_duplicates<'a>(items: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    items.into_iter().any(|i| !seen.insert(i))
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Parses a Go-style duration made of whole `h`, `m` and `s` parts (`1h30m`, `45s`). `None` for
/// anything else (fractions, `ms`, negative values, overflow).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(d))?);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() || s.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// Which workloads a policy audits. A workload is audited when its namespace and its labels
/// match and its kind is listed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MatchSpec {
    /// Namespaces to audit; empty means all. An entry ending in `*` matches by prefix
    /// (`crm-*`); `*` alone matches every namespace.
    #[schemars(inner(pattern(NAMESPACE_PATTERN)))]
    pub namespaces: Vec<String>,

    /// Only namespaces whose labels match this selector. Omitted: no label condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Namespaces never audited, even when listed or selected. Same syntax as `namespaces`.
    #[schemars(inner(pattern(NAMESPACE_PATTERN)))]
    pub excluded_namespaces: Vec<String>,

    /// Only workloads whose own labels (`metadata.labels`, not the pod template's) match this
    /// selector. Omitted: every workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,

    /// Workload kinds to audit. Default: Deployment and StatefulSet.
    #[schemars(length(min = 1))]
    pub kinds: Vec<WorkloadKind>,
}

impl Default for MatchSpec {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            namespace_selector: None,
            excluded_namespaces: Vec::new(),
            workload_selector: None,
            kinds: DEFAULT_KINDS.to_vec(),
        }
    }
}

fn namespace_pattern_matches(pattern: &str, ns: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => ns.starts_with(prefix),
        None => pattern == ns,
    }
}

impl MatchSpec {
    /// Whether a namespace with this name and these labels is audited: not excluded, listed in
    /// `namespaces` (when set) and matched by `namespaceSelector` (when set).
    pub fn matches_namespace(&self, ns_name: &str, ns_labels: &BTreeMap<String, String>) -> bool {
        if self.excluded_namespaces.iter().any(|p| namespace_pattern_matches(p, ns_name)) {
            return false;
        }
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|p| namespace_pattern_matches(p, ns_name)) {
            return false;
        }
        self.namespace_selector.as_ref().is_none_or(|s| selector_matches(s, ns_labels))
    }

    /// Whether a workload with these labels is matched by `workloadSelector` (always, when unset).
    pub fn matches_workload_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.workload_selector.as_ref().is_none_or(|s| selector_matches(s, labels))
    }

    /// The kinds to audit, without duplicates; the defaults when the list is empty (which the
    /// schema forbids, but a policy file read by `crmrisk scan` may still say).
    pub fn kinds(&self) -> Vec<WorkloadKind> {
        let mut kinds: Vec<WorkloadKind> = Vec::new();
        for k in &self.kinds {
            if !kinds.contains(k) {
                kinds.push(*k);
            }
        }
        if kinds.is_empty() { DEFAULT_KINDS.to_vec() } else { kinds }
    }

    /// Whether `kind` is one of [`MatchSpec::kinds`].
    pub fn matches_kind(&self, kind: WorkloadKind) -> bool {
        self.kinds().contains(&kind)
    }

    /// All of the above at once.
    pub fn matches(
        &self,
        kind: WorkloadKind,
        ns_name: &str,
        ns_labels: &BTreeMap<String, String>,
        workload_labels: &BTreeMap<String, String>,
    ) -> bool {
        self.matches_kind(kind)
            && self.matches_namespace(ns_name, ns_labels)
            && self.matches_workload_labels(workload_labels)
    }
}

/// The built-in checks. This object, with every default filled in, is what the Rego rules see
/// as `input.params`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Checks {
    /// Encryption of data at rest and in transit.
    pub encryption: EncryptionChecks,
    /// Backup coverage, interval, retention and offsite copies.
    pub backups: BackupChecks,
    /// What the workload's ServiceAccount may do.
    pub rbac: RbacChecks,
    /// Replicas, disruption budgets and zone spread.
    pub disaster_recovery: DisasterRecoveryChecks,
    /// Per-rule overrides by rule id (e.g. `BKP-001`): turn a rule off or change its default
    /// likelihood or impact. Applies to custom rules too.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub rules: Vec<RuleOverride>,
}

impl Checks {
    /// Whether the area `category` is enabled (custom rules are always on; turn them off one by
    /// one in `rules`).
    pub fn category_enabled(&self, category: Category) -> bool {
        match category {
            Category::Encryption => self.encryption.enabled,
            Category::Backups => self.backups.enabled,
            Category::Rbac => self.rbac.enabled,
            Category::DisasterRecovery => self.disaster_recovery.enabled,
            Category::Custom => true,
        }
    }

    /// The override for rule `id`, if any.
    pub fn rule_override(&self, id: &str) -> Option<&RuleOverride> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Whether rule `id` of area `category` runs: its area is enabled and no override turns it
    /// off. An override with `enabled: true` does not turn on a rule of a disabled area.
    pub fn rule_enabled(&self, category: Category, id: &str) -> bool {
        self.category_enabled(category) && self.rule_override(id).and_then(|r| r.enabled).unwrap_or(true)
    }
}

/// Encryption checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EncryptionChecks {
    /// Run the encryption checks at all.
    pub enabled: bool,
    /// Volumes must use a StorageClass that encrypts (with customer-managed keys where the
    /// platform always encrypts with its own).
    pub require_encrypted_storage: bool,
    /// Ingresses routing to the workload must terminate TLS for every host.
    #[serde(rename = "requireIngressTLS")]
    pub require_ingress_tls: bool,
    /// Database connections must be encrypted (sslmode require/verify-ca/verify-full, or a
    /// mesh with strict mTLS).
    #[serde(rename = "requireDatabaseTLS")]
    pub require_database_tls: bool,
}

impl Default for EncryptionChecks {
    fn default() -> Self {
        Self { enabled: true, require_encrypted_storage: true, require_ingress_tls: true, require_database_tls: true }
    }
}

/// Backup checks (Velero Schedules, CloudNativePG backups).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct BackupChecks {
    /// Run the backup checks at all.
    pub enabled: bool,
    /// Longest accepted gap between two backups, in hours.
    #[schemars(range(min = 1))]
    pub max_interval_hours: u32,
    /// Shortest accepted backup retention, in days.
    #[schemars(range(min = 1))]
    pub min_retention_days: u32,
    /// Backups must leave the cluster (object storage, not only volume snapshots).
    pub require_offsite: bool,
}

impl Default for BackupChecks {
    fn default() -> Self {
        Self { enabled: true, max_interval_hours: 24, min_retention_days: 7, require_offsite: true }
    }
}

/// RBAC checks on the workload's ServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RbacChecks {
    /// Run the RBAC checks at all.
    pub enabled: bool,
    /// The ServiceAccount must not be bound to cluster-admin.
    pub forbid_cluster_admin: bool,
    /// The ServiceAccount's roles must not use `*` in verbs, resources or API groups.
    pub forbid_wildcards: bool,
    /// The ServiceAccount must not be able to read every Secret (of its namespace or the cluster).
    pub forbid_secret_read_all: bool,
    /// The pod must not mount a ServiceAccount token it does not need.
    pub forbid_token_automount: bool,
}

impl Default for RbacChecks {
    fn default() -> Self {
        Self {
            enabled: true,
            forbid_cluster_admin: true,
            forbid_wildcards: true,
            forbid_secret_read_all: true,
            forbid_token_automount: true,
        }
    }
}

/// Disaster-recovery checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct DisasterRecoveryChecks {
    /// Run the disaster-recovery checks at all.
    pub enabled: bool,
    /// Fewest replicas accepted for Deployments and StatefulSets.
    #[schemars(range(min = 1))]
    pub min_replicas: u32,
    /// A PodDisruptionBudget must cover the workload's pods.
    pub require_pod_disruption_budget: bool,
    /// Pods must be spread across zones (topology spread constraints or pod anti-affinity).
    pub require_zone_spread: bool,
}

impl Default for DisasterRecoveryChecks {
    fn default() -> Self {
        Self { enabled: true, min_replicas: 2, require_pod_disruption_budget: true, require_zone_spread: true }
    }
}

/// Changes one rule: turn it off, or change its default likelihood or impact. Unset fields keep
/// the rule's defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleOverride {
    /// Rule id, e.g. `ENC-001`.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// `false` turns the rule off in this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Likelihood 1-5 to use instead of the rule's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub likelihood: Option<u8>,
    /// Impact 1-5 to use instead of the rule's default (the uplift from the workload's data
    /// classification or business impact still applies on top).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub impact: Option<u8>,
}

/// A custom Rego module, inline or from a ConfigMap (exactly one of the two).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.rego) != has(self.configMapRef)").message("set exactly one of rego or configMapRef"))]
#[serde(rename_all = "camelCase")]
pub struct CustomPolicy {
    /// Unique name of this module within the policy (a DNS label); shown in status messages.
    #[schemars(pattern(DNS_LABEL_PATTERN), length(min = 1, max = 63))]
    pub name: String,
    /// The Rego module source (`rego.v1` syntax), inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<String>,
    /// A ConfigMap key holding the Rego module source. Whoever can edit that ConfigMap can
    /// change what this policy reports: keep it in a namespace only administrators can write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapRegoRef>,
}

/// A key of a ConfigMap holding Rego source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapRegoRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// ConfigMap namespace (the policy is cluster-scoped, so it must be given).
    #[schemars(pattern(DNS_LABEL_PATTERN), length(min = 1, max = 63))]
    pub namespace: String,
    /// Key within the ConfigMap's `data`. Default `policy.rego`.
    #[serde(default = "default_config_map_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Observed state of a CRMRiskPolicy, as of the last audit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CRMRiskPolicyStatus {
    /// The `metadata.generation` the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the policy compiled and the last audit ran) and `RiskWithinTolerance` (no
    /// matched workload has an unaccepted finding at or above the tolerance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Counts over every matched workload and finding.
    #[serde(default)]
    pub summary: PolicySummary,
    /// The highest-scoring findings (unaccepted first), at most 20. The summary counts all
    /// findings; each workload's CRMRiskReport lists its own in full.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub top_findings: Vec<TopFinding>,
    /// When the last complete audit finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_audit_time: Option<Time>,
}

/// Counts from the last audit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicySummary {
    /// Workloads this policy matched.
    pub workloads_matched: u32,
    /// Workloads with at least one unaccepted finding scoring at or above the tolerance.
    pub workloads_at_risk: u32,
    /// Workloads that have findings at or above the tolerance, all of them accepted by
    /// CRMRiskExceptions (not counted in `workloadsAtRisk`).
    pub workloads_accepted: u32,
    /// Highest score of any unaccepted finding (0 when there is none).
    pub max_score: u8,
    /// Number of findings per band (`low`, `medium`, `high`, `critical`), accepted ones included.
    pub findings_by_band: BTreeMap<String, u32>,
    /// Number of findings per category (`encryption`, `backups`, `rbac`, `disasterRecovery`,
    /// `custom`), accepted ones included.
    pub findings_by_category: BTreeMap<String, u32>,
    /// Matched workloads whose last evaluation failed (time or instruction limit, malformed
    /// finding). Their last good report is kept; the Ready condition names the first of them.
    #[serde(skip_serializing_if = "is_zero")]
    pub workloads_failed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One finding in `status.topFindings`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopFinding {
    /// The workload the finding is about.
    pub workload: WorkloadRef,
    /// Rule id, e.g. `BKP-001`.
    pub id: String,
    /// likelihood x impact, 1-25.
    pub score: u8,
    /// Band of the score.
    pub band: Band,
    /// True when a CRMRiskException accepts this finding.
    pub accepted: bool,
    /// What is wrong, naming the objects involved.
    pub message: String,
}

impl TopFinding {
    /// The status entry for `finding` on `workload`.
    pub fn new(workload: &WorkloadRef, finding: &ScoredFinding) -> Self {
        Self {
            workload: workload.clone(),
            id: finding.id.clone(),
            score: finding.score,
            band: finding.band,
            accepted: finding.accepted,
            message: finding.message.clone(),
        }
    }
}

/// Keeps the [`TOP_FINDINGS_CAP`] most relevant findings: unaccepted before accepted, then by
/// score (highest first), then by workload and rule id so the order is stable between audits
/// (no status churn).
pub fn select_top_findings(findings: impl IntoIterator<Item = TopFinding>) -> Vec<TopFinding> {
    fn order(a: &TopFinding, b: &TopFinding) -> std::cmp::Ordering {
        a.accepted
            .cmp(&b.accepted)
            .then(b.score.cmp(&a.score))
            .then_with(|| a.workload.cmp(&b.workload))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.message.cmp(&b.message))
    }
    // A policy over thousands of workloads has tens of thousands of findings: keep at most
    // twice the cap at any time instead of collecting them all (the order is total, so the
    // result is the same as sorting everything).
    let mut kept: Vec<TopFinding> = Vec::with_capacity(2 * TOP_FINDINGS_CAP);
    for f in findings {
        kept.push(f);
        if kept.len() == 2 * TOP_FINDINGS_CAP {
            kept.sort_by(order);
            kept.truncate(TOP_FINDINGS_CAP);
        }
    }
    kept.sort_by(order);
    kept.truncate(TOP_FINDINGS_CAP);
    kept
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn an_empty_spec_gets_every_documented_default() {
        let spec: CRMRiskPolicySpec = serde_json::from_value(json!({})).expect("empty spec is valid");
        assert_eq!(spec, CRMRiskPolicySpec::default());
        assert_eq!(spec.risk_tolerance, 10);
        assert_eq!(spec.audit_interval, "10m");
        assert_eq!(spec.audit_interval(), Duration::from_secs(600));
        assert!(spec.custom_policies.is_empty());

        let m = &spec.match_spec;
        assert!(m.namespaces.is_empty() && m.excluded_namespaces.is_empty());
        assert!(m.namespace_selector.is_none() && m.workload_selector.is_none());
        assert_eq!(m.kinds, vec![WorkloadKind::Deployment, WorkloadKind::StatefulSet]);

        let c = &spec.checks;
        assert_eq!(
            c.encryption,
            EncryptionChecks {
                enabled: true,
                require_encrypted_storage: true,
                require_ingress_tls: true,
                require_database_tls: true
            }
        );
        assert_eq!(
            c.backups,
            BackupChecks { enabled: true, max_interval_hours: 24, min_retention_days: 7, require_offsite: true }
        );
        assert_eq!(
            c.rbac,
            RbacChecks {
                enabled: true,
                forbid_cluster_admin: true,
                forbid_wildcards: true,
                forbid_secret_read_all: true,
                forbid_token_automount: true
            }
        );
        assert_eq!(
            c.disaster_recovery,
            DisasterRecoveryChecks {
                enabled: true,
                min_replicas: 2,
                require_pod_disruption_budget: true,
                require_zone_spread: true
            }
        );
        assert!(c.rules.is_empty());
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn partial_objects_keep_the_other_defaults() {
        let spec: CRMRiskPolicySpec = serde_json::from_value(json!({
            "match": {"namespaces": ["crm"]},
            "checks": {"backups": {"maxIntervalHours": 12}, "rbac": {"enabled": false}},
        }))
        .expect("valid");
        assert_eq!(spec.match_spec.kinds, DEFAULT_KINDS.to_vec());
        assert_eq!(spec.checks.backups.max_interval_hours, 12);
        assert_eq!(spec.checks.backups.min_retention_days, 7);
        assert!(!spec.checks.rbac.enabled);
        assert!(spec.checks.rbac.forbid_cluster_admin);
        assert!(!spec.checks.category_enabled(Category::Rbac));
        assert!(spec.checks.category_enabled(Category::Backups));
    }

    #[test]
    fn checks_serialize_with_the_params_names_the_rego_expects() {
        let params = serde_json::to_value(Checks::default()).expect("serializes");
        assert_eq!(
            params,
            json!({
                "encryption": {"enabled": true, "requireEncryptedStorage": true, "requireIngressTLS": true, "requireDatabaseTLS": true},
                "backups": {"enabled": true, "maxIntervalHours": 24, "minRetentionDays": 7, "requireOffsite": true},
                "rbac": {"enabled": true, "forbidClusterAdmin": true, "forbidWildcards": true, "forbidSecretReadAll": true, "forbidTokenAutomount": true},
                "disasterRecovery": {"enabled": true, "minReplicas": 2, "requirePodDisruptionBudget": true, "requireZoneSpread": true},
                "rules": [],
            })
        );
        let spec = serde_json::to_value(CRMRiskPolicySpec::default()).expect("serializes");
        let mut keys: Vec<&str> = spec.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["auditInterval", "checks", "customPolicies", "match", "riskTolerance"]);
    }

    #[test]
    fn rule_overrides_turn_rules_off_and_never_revive_disabled_areas() {
        let spec: CRMRiskPolicySpec = serde_json::from_value(json!({"checks": {
            "backups": {"enabled": false},
            "rules": [{"id": "ENC-001", "enabled": false}, {"id": "BKP-001", "enabled": true}, {"id": "RBAC-001", "impact": 5}],
        }}))
        .expect("valid");
        let c = &spec.checks;
        assert!(!c.rule_enabled(Category::Encryption, "ENC-001"));
        assert!(c.rule_enabled(Category::Encryption, "ENC-002"));
        assert!(!c.rule_enabled(Category::Backups, "BKP-001"));
        assert!(c.rule_enabled(Category::Rbac, "RBAC-001"));
        assert_eq!(c.rule_override("RBAC-001").and_then(|r| r.impact), Some(5));
        assert!(c.rule_enabled(Category::Custom, "CUSTOM-1"));
    }

    #[test]
    fn audit_interval_parses_go_durations_and_clamps() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h0m45s"), Some(Duration::from_secs(3645)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        for bad in ["", "10", "m", "1.5h", "10ms", "-1m", "1d", "1 h", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let with = |s: &str| CRMRiskPolicySpec { audit_interval: s.into(), ..Default::default() }.audit_interval();
        assert_eq!(with("5s"), MIN_AUDIT_INTERVAL);
        assert_eq!(with("72h"), MAX_AUDIT_INTERVAL);
        assert_eq!(with("2m"), Duration::from_secs(120));
        assert_eq!(with("soon"), Duration::from_secs(600));
    }

    #[test]
    fn namespace_matching_honours_lists_prefixes_exclusions_and_selectors() {
        let all = MatchSpec::default();
        assert!(all.matches_namespace("anything", &labels(&[])));

        let m = MatchSpec {
            namespaces: vec!["crm".into(), "crm-*".into()],
            excluded_namespaces: vec!["crm-sandbox".into()],
            ..Default::default()
        };
        assert!(m.matches_namespace("crm", &labels(&[])));
        assert!(m.matches_namespace("crm-eu", &labels(&[])));
        assert!(!m.matches_namespace("crm-sandbox", &labels(&[])));
        assert!(!m.matches_namespace("crmx", &labels(&[])));
        assert!(!m.matches_namespace("billing", &labels(&[])));

        let star = MatchSpec {
            namespaces: vec!["*".into()],
            excluded_namespaces: vec!["kube-*".into()],
            ..Default::default()
        };
        assert!(star.matches_namespace("crm", &labels(&[])));
        assert!(!star.matches_namespace("kube-system", &labels(&[])));

        let selected = MatchSpec {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("team", "crm")])),
                match_expressions: None,
            }),
            ..Default::default()
        };
        assert!(selected.matches_namespace("a", &labels(&[("team", "crm")])));
        assert!(!selected.matches_namespace("a", &labels(&[("team", "billing")])));
    }

    #[test]
    fn workload_labels_and_kinds() {
        let m: MatchSpec = serde_json::from_value(json!({
            "workloadSelector": {"matchExpressions": [{"key": "app.kubernetes.io/part-of", "operator": "In", "values": ["crm"]}]},
            "kinds": ["StatefulSet", "CronJob", "StatefulSet"],
        }))
        .expect("valid");
        assert!(m.matches_workload_labels(&labels(&[("app.kubernetes.io/part-of", "crm")])));
        assert!(!m.matches_workload_labels(&labels(&[])));
        assert_eq!(m.kinds(), vec![WorkloadKind::StatefulSet, WorkloadKind::CronJob]);
        assert!(!m.matches_kind(WorkloadKind::Deployment));
        assert!(m.matches(
            WorkloadKind::CronJob,
            "crm",
            &labels(&[]),
            &labels(&[("app.kubernetes.io/part-of", "crm")])
        ));
        assert!(!m.matches(
            WorkloadKind::Deployment,
            "crm",
            &labels(&[]),
            &labels(&[("app.kubernetes.io/part-of", "crm")])
        ));

        let empty = MatchSpec { kinds: vec![], ..Default::default() };
        assert_eq!(empty.kinds(), DEFAULT_KINDS.to_vec());
        assert!(MatchSpec::default().matches_workload_labels(&labels(&[])));
    }

    #[test]
    fn validate_reports_what_the_schema_would_reject() {
        let spec: CRMRiskPolicySpec = serde_json::from_value(json!({
            "riskTolerance": 30,
            "auditInterval": "1d",
            "match": {"workloadSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}},
            "checks": {"rules": [{"id": "X-1", "likelihood": 9}, {"id": "X-1"}]},
            "customPolicies": [
                {"name": "Bad_Name", "rego": "package crmrisk.custom.a"},
                {"name": "both", "rego": "x", "configMapRef": {"name": "cm", "namespace": "crm"}},
                {"name": "neither"},
                {"name": "neither"},
            ],
        }))
        .expect("deserializes");
        let problems = spec.validate().expect_err("invalid");
        let all = problems.join("\n");
        for needle in [
            "riskTolerance 30",
            "auditInterval",
            "match.workloadSelector",
            "likelihood 9",
            "checks.rules: duplicate id",
            "\"Bad_Name\" is not a DNS label",
            "customPolicies[both]: set exactly one",
            "customPolicies[neither]: set exactly one",
            "customPolicies: duplicate name",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        let cm: ConfigMapRegoRef = serde_json::from_value(json!({"name": "cm", "namespace": "crm"})).expect("valid");
        assert_eq!(cm.key, "policy.rego");
    }

    #[test]
    fn top_findings_are_capped_and_ordered() {
        let w = |name: &str| WorkloadRef { kind: WorkloadKind::Deployment, namespace: "crm".into(), name: name.into() };
        let f = |name: &str, id: &str, score: u8, accepted: bool| TopFinding {
            workload: w(name),
            id: id.into(),
            score,
            band: Band::of(score),
            accepted,
            message: String::new(),
        };
        let mut input = vec![f("a", "X-1", 25, true), f("b", "X-2", 4, false), f("a", "X-3", 16, false)];
        for i in 0..30 {
            input.push(f("c", &format!("Y-{i:02}"), 2, false));
        }
        let top = select_top_findings(input);
        assert_eq!(top.len(), TOP_FINDINGS_CAP);
        assert_eq!((top[0].id.as_str(), top[0].score), ("X-3", 16));
        assert_eq!(top[1].id, "X-2");
        assert_eq!(top[2].id, "Y-00");
        assert!(top.iter().all(|t| !t.accepted), "the accepted finding sorts after 30 unaccepted ones");
    }

    #[test]
    fn top_findings_of_many_equal_a_full_sort() {
        // More findings than the bounded selection keeps at once, in a scrambled order.
        let input: Vec<TopFinding> = (0u32..1000)
            .map(|i| {
                let k = i.wrapping_mul(7919) % 1000;
                let score = (k % 25) as u8 + 1;
                TopFinding {
                    workload: WorkloadRef {
                        kind: WorkloadKind::Deployment,
                        namespace: "crm".into(),
                        name: format!("w{:03}", k % 97),
                    },
                    id: format!("R-{:03}", k),
                    score,
                    band: Band::of(score),
                    accepted: k % 3 == 0,
                    message: String::new(),
                }
            })
            .collect();
        let mut expected = input.clone();
        expected.sort_by(|a, b| {
            (a.accepted, std::cmp::Reverse(a.score), &a.workload, &a.id).cmp(&(
                b.accepted,
                std::cmp::Reverse(b.score),
                &b.workload,
                &b.id,
            ))
        });
        expected.truncate(TOP_FINDINGS_CAP);
        assert_eq!(select_top_findings(input), expected);
    }
}
