//! Leader election on a `coordination.k8s.io/v1` Lease, so that two or more replicas can run
//! for availability while only one of them writes to the API server.
//!
//! The algorithm is the one Kubernetes' own controllers use:
//!
//! - Every replica reads the Lease every `retry_period`. A holder's claim is considered valid
//!   until `leaseDurationSeconds` have passed *on the reader's own monotonic clock* since the
//!   reader last saw the Lease change. No wall clocks are compared, so clock skew between nodes
//!   cannot make two replicas think they lead.
//! - Taking or renewing the Lease is a `PUT` carrying the `resourceVersion` that was read
//!   (optimistic concurrency): when two replicas race, the API server accepts one write and
//!   answers 409 Conflict to the other.
//! - The leader renews every `retry_period`. If it has not renewed for `renew_deadline`
//!   (shorter than the lease duration) it steps down on its own, whether the API server is
//!   down, slow or unreachable from this replica only. Others cannot take over before
//!   `lease_duration` after the last successful renewal, so the old leader has stopped before a
//!   new one starts: never two writers.
//! - On shutdown the leader steps down first, then clears `holderIdentity`, so a standby takes
//!   over within one `retry_period` instead of waiting for the lease to expire.
//!
//! `kube-lease-manager` was considered and not used: its watch loop keeps reporting leadership
//! while renewals fail (it retries with a backoff of up to 30 s without stepping down), and it
//! decides expiry by comparing the holder's `renewTime` with the local wall clock.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Name of the operator's Lease (in its own namespace).
pub const DEFAULT_LEASE_NAME: &str = "crm-risk-operator-leader";

/// Upper bound of the retry back-off of a replica that is not leading and cannot reach the API
/// server: long enough not to flood a recovering API server, short enough to take over soon.
const MAX_CANDIDATE_BACKOFF: Duration = Duration::from_secs(16);

/// How long a shutting-down leader tries to release the Lease before giving up (the Lease
/// then simply expires).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Timing of the election. All three are durations on the local monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// How long others wait, after they last saw the Lease change, before taking it over.
    /// Written to the Lease in whole seconds (rounded up).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down. Must be shorter than
    /// `lease_duration`; the difference is the safety margin against two writers.
    pub renew_deadline: Duration,
    /// How often the leader renews and the others check the Lease.
    pub retry_period: Duration,
}

impl Default for LeaderConfig {
    /// 15 s lease, 10 s renew deadline, 2 s retry period: a crashed leader is replaced within
    /// about 15 s, a leader cut off from the API server stops writing within 10 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderConfig {
    /// Checks the relations the safety argument relies on.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(LeaderError::InvalidConfig("lease duration must be at least 1s".into()));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaderError::InvalidConfig(format!(
                "renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            )));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(LeaderError::InvalidConfig(format!(
                "retry period ({:?}) must be positive and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            )));
        }
        Ok(())
    }

    /// `lease_duration` as written to `spec.leaseDurationSeconds`: whole seconds, rounded up.
    fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX).max(1)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid leader election settings: {0}")]
    InvalidConfig(String),
}

/// This replica's view of its leadership; cheap to clone and to query.
///
/// Dropping every handle (and so every way to ask) stops the election like
/// [`LeaderHandle::shutdown`] does.
#[derive(Debug, Clone)]
pub struct LeaderHandle {
    state: watch::Receiver<bool>,
    stop: Arc<watch::Sender<bool>>,
}

impl LeaderHandle {
    /// Whether this replica leads right now. Writers check it before every write.
    ///
    /// False from the moment [`LeaderHandle::shutdown`] is called, and once the election task
    /// has ended for any reason (even a panic or an abort), so a dead elector can never leave a
    /// replica believing it still leads.
    pub fn is_leader(&self) -> bool {
        !*self.stop.borrow() && self.state.has_changed().is_ok() && *self.state.borrow()
    }

    /// Waits until leadership changes (or changed since this handle last waited) and returns
    /// the new state; `None` once the election has stopped (this replica then never leads again).
    pub async fn changed(&mut self) -> Option<bool> {
        self.state.changed().await.ok()?;
        Some(*self.state.borrow_and_update())
    }

    /// Waits until this replica leads. Returns `false` if the election stopped first.
    pub async fn wait_until_leader(&mut self) -> bool {
        self.state.wait_for(|leader| *leader).await.is_ok()
    }

    /// Asks the election to stop: the leader steps down (`is_leader()` turns false at once) and
    /// releases the Lease; await the task's `JoinHandle` to know it is done. Stop writing
    /// before calling this, so the next leader never overlaps with a write of ours in flight.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

/// Runs the election in a background task.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    config: LeaderConfig,
}

impl LeaderElector {
    /// Starts campaigning for `namespace/lease_name` as `identity` with the default timing
    /// (see [`LeaderConfig::default`]). Creates the Lease if it does not exist.
    pub fn spawn(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: impl Into<String>,
    ) -> (LeaderHandle, JoinHandle<()>) {
        Self::start(client, namespace, lease_name, identity.into(), LeaderConfig::default())
    }

    /// Like [`LeaderElector::spawn`] with explicit timing (tests use short ones).
    pub fn spawn_with_config(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: impl Into<String>,
        config: LeaderConfig,
    ) -> Result<(LeaderHandle, JoinHandle<()>), LeaderError> {
        config.validate()?;
        Ok(Self::start(client, namespace, lease_name, identity.into(), config))
    }

    fn start(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: String,
        config: LeaderConfig,
    ) -> (LeaderHandle, JoinHandle<()>) {
        let (state_tx, state_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let elector = LeaderElector {
            api: Api::namespaced(client, namespace),
            lease_name: lease_name.to_owned(),
            identity,
            config,
        };
        let task = tokio::spawn(elector.run(state_tx, stop_rx));
        (LeaderHandle { state: state_rx, stop: Arc::new(stop_tx) }, task)
    }

    async fn run(self, state: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let mut record = Observed::default();
        info!(lease = %self.lease_name, identity = %self.identity, "leader election started");
        loop {
            // Not leading: poll until the Lease is ours.
            let mut backoff = self.config.retry_period;
            let mut last_renew = loop {
                let started = Instant::now();
                let attempt = tokio::select! {
                    biased;
                    _ = stopped(&mut stop) => return,
                    attempt = tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew(&mut record)) => attempt,
                };
                let wait = match attempt {
                    Ok(Ok(true)) => break started,
                    Ok(Ok(false)) => {
                        backoff = self.config.retry_period;
                        self.config.retry_period
                    }
                    Ok(Err(e)) => {
                        warn!(lease = %self.lease_name, error = %e, retry_in = ?backoff, "cannot read or take the leader lease");
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_CANDIDATE_BACKOFF);
                        wait
                    }
                    Err(_) => {
                        warn!(lease = %self.lease_name, retry_in = ?backoff, "leader lease request timed out");
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_CANDIDATE_BACKOFF);
                        wait
                    }
                };
                tokio::select! {
                    biased;
                    _ = stopped(&mut stop) => return,
                    _ = tokio::time::sleep(jittered(wait)) => {}
                }
            };
            state.send_if_modified(|leader| !std::mem::replace(leader, true));
            info!(lease = %self.lease_name, identity = %self.identity, "became leader");

            // Leading: renew every retry period; step down when renewing fails until the deadline.
            'leading: loop {
                tokio::select! {
                    biased;
                    _ = stopped(&mut stop) => {
                        step_down(&state);
                        self.release(&record).await;
                        return;
                    }
                    _ = tokio::time::sleep(self.config.retry_period) => {}
                }
                let deadline = last_renew + self.config.renew_deadline;
                loop {
                    let started = Instant::now();
                    if started >= deadline {
                        warn!(lease = %self.lease_name, "could not renew the leader lease in time; stepping down");
                        break 'leading;
                    }
                    let attempt = tokio::select! {
                        biased;
                        _ = stopped(&mut stop) => {
                            step_down(&state);
                            self.release(&record).await;
                            return;
                        }
                        attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew(&mut record)) => attempt,
                    };
                    match attempt {
                        Ok(Ok(true)) => {
                            last_renew = started;
                            continue 'leading;
                        }
                        Ok(Ok(false)) => {
                            warn!(lease = %self.lease_name, holder = ?record.holder(), "leader lease taken by another replica; stepping down");
                            break 'leading;
                        }
                        Ok(Err(e)) => {
                            warn!(lease = %self.lease_name, error = %e, "cannot renew the leader lease; retrying");
                            let retry_at = (Instant::now() + self.config.retry_period / 2).min(deadline);
                            tokio::select! {
                                biased;
                                _ = stopped(&mut stop) => {
                                    step_down(&state);
                                    self.release(&record).await;
                                    return;
                                }
                                _ = tokio::time::sleep_until(retry_at) => {}
                            }
                        }
                        Err(_) => {
                            warn!(lease = %self.lease_name, "leader lease renewal timed out; stepping down");
                            break 'leading;
                        }
                    }
                }
            }
            step_down(&state);
        }
    }

    /// One round of the algorithm: read the Lease, and write it if it is free, expired or ours.
    /// `Ok(true)` when this replica holds the Lease after the call.
    async fn try_acquire_or_renew(&self, record: &mut Observed) -> Result<bool, kube::Error> {
        let duration = self.config.lease_duration_seconds();
        let Some(current) = self.api.get_opt(&self.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.lease_name.clone()), ..ObjectMeta::default() },
                spec: Some(next_spec(None, &self.identity, duration, Timestamp::now())),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    record.observe(created, Instant::now());
                    Ok(true)
                }
                // Another replica created it first: next round reads it.
                Err(kube::Error::Api(status)) if status.is_already_exists() || status.is_conflict() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let now = Instant::now();
        record.observe(current.clone(), now);
        let spec = current.spec.clone().unwrap_or_default();
        if held_by_other(&spec, &self.identity, record.observed_at, now, self.config.lease_duration) {
            return Ok(false);
        }
        let mut update = current;
        update.spec = Some(next_spec(Some(&spec), &self.identity, duration, Timestamp::now()));
        // `update.metadata.resource_version` is the one just read: the PUT fails with 409 if
        // anyone wrote the Lease in between.
        match self.api.replace(&self.lease_name, &PostParams::default(), &update).await {
            Ok(written) => {
                record.observe(written, Instant::now());
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                debug!(lease = %self.lease_name, "leader lease changed under us");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Clears `holderIdentity` if the last Lease we wrote still says we hold it. Best effort:
    /// on any failure the Lease expires on its own.
    async fn release(&self, record: &Observed) {
        let Some(lease) = &record.lease else { return };
        let Some(spec) = &lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let mut released = lease.clone();
        released.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..spec.clone()
        });
        let params = PostParams::default();
        let put = self.api.replace(&self.lease_name, &params, &released);
        match tokio::time::timeout(RELEASE_TIMEOUT, put).await {
            Ok(Ok(_)) => info!(lease = %self.lease_name, "released the leader lease"),
            Ok(Err(kube::Error::Api(status))) if status.is_conflict() => {
                debug!(lease = %self.lease_name, "leader lease already changed; nothing to release")
            }
            Ok(Err(e)) => {
                warn!(lease = %self.lease_name, error = %e, "could not release the leader lease; it will expire")
            }
            Err(_) => warn!(lease = %self.lease_name, "releasing the leader lease timed out; it will expire"),
        }
    }
}

/// An identity unique among the replicas: the pod name (`POD_NAME` from the downward API) when
/// running in a pod, else `hostname_pid` (two processes on one machine, e.g. in tests).
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.trim().is_empty()
    {
        return pod.trim().to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}_{}", std::process::id())
}

/// The last Lease this replica read or wrote, and when (locally) its content last changed.
#[derive(Debug)]
struct Observed {
    lease: Option<Lease>,
    observed_at: Instant,
}

impl Default for Observed {
    fn default() -> Self {
        Self { lease: None, observed_at: Instant::now() }
    }
}

impl Observed {
    /// Records `lease`; restarts the expiry clock only if the spec changed, since only a change
    /// proves the holder is alive.
    fn observe(&mut self, lease: Lease, now: Instant) {
        let changed = self.lease.as_ref().map(|l| &l.spec) != Some(&lease.spec);
        if changed {
            self.observed_at = now;
        }
        self.lease = Some(lease);
    }

    fn holder(&self) -> Option<&str> {
        self.lease.as_ref()?.spec.as_ref()?.holder_identity.as_deref()
    }
}

/// Whether someone else holds the Lease and their claim has not expired: `observed_at` is
/// when this replica saw the current spec appear, `now` the current local time.
fn held_by_other(spec: &LeaseSpec, identity: &str, observed_at: Instant, now: Instant, fallback: Duration) -> bool {
    match spec.holder_identity.as_deref() {
        None | Some("") => false,
        Some(holder) if holder == identity => false,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(fallback, Duration::from_secs);
            now < observed_at + duration
        }
    }
}

/// The spec that takes (or renews) the Lease for `identity` at `now`.
fn next_spec(current: Option<&LeaseSpec>, identity: &str, duration_seconds: i32, now: Timestamp) -> LeaseSpec {
    let mut spec = current.cloned().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(identity) {
        spec.holder_identity = Some(identity.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(match current {
            None => 0,
            Some(c) => c.lease_transitions.unwrap_or(0).saturating_add(1),
        });
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration_seconds);
    spec
}

fn step_down(state: &watch::Sender<bool>) {
    if state.send_if_modified(|leader| std::mem::replace(leader, false)) {
        info!("no longer leader");
    }
}

/// Resolves once a stop was asked for, or every handle is gone (nobody could act on
/// leadership any more).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// `base` stretched by up to 20 %, so replicas started together do not poll in lockstep.
fn jittered(base: Duration) -> Duration {
    let random = RandomState::new().hash_one(std::time::Instant::now());
    base.mul_f64(1.0 + (random % 1000) as f64 / 5000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: duration,
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn default_config_is_valid_and_rounds_up() {
        let config = LeaderConfig::default();
        config.validate().unwrap();
        assert_eq!(config.lease_duration_seconds(), 15);
        let short = LeaderConfig { lease_duration: Duration::from_millis(1500), ..config };
        assert_eq!(short.lease_duration_seconds(), 2);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let base = LeaderConfig::default();
        for bad in [
            LeaderConfig { renew_deadline: base.lease_duration, ..base },
            LeaderConfig { retry_period: base.renew_deadline, ..base },
            LeaderConfig { retry_period: Duration::ZERO, ..base },
            LeaderConfig { lease_duration: Duration::from_millis(500), ..base },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn free_own_and_expired_leases_can_be_taken() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        assert!(!held_by_other(&spec(None, Some(15)), "me", t0, t0, d));
        assert!(!held_by_other(&spec(Some(""), Some(15)), "me", t0, t0, d));
        assert!(!held_by_other(&spec(Some("me"), Some(15)), "me", t0, t0, d));
        assert!(held_by_other(&spec(Some("other"), Some(15)), "me", t0, t0 + Duration::from_secs(14), d));
        assert!(!held_by_other(&spec(Some("other"), Some(15)), "me", t0, t0 + Duration::from_secs(15), d));
        // The holder's own duration counts, not ours...
        assert!(!held_by_other(&spec(Some("other"), Some(1)), "me", t0, t0 + Duration::from_secs(2), d));
        // ...unless it is missing or nonsense.
        assert!(held_by_other(&spec(Some("other"), None), "me", t0, t0 + Duration::from_secs(2), d));
        assert!(held_by_other(&spec(Some("other"), Some(-1)), "me", t0, t0 + Duration::from_secs(2), d));
    }

    #[test]
    fn expiry_clock_restarts_only_when_the_lease_changes() {
        let t0 = Instant::now();
        let mut observed = Observed::default();
        let lease = |renew: i64| Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
                ..spec(Some("other"), Some(15))
            }),
        };
        observed.observe(lease(1), t0);
        observed.observe(lease(1), t0 + Duration::from_secs(5));
        assert_eq!(observed.observed_at, t0);
        observed.observe(lease(2), t0 + Duration::from_secs(6));
        assert_eq!(observed.observed_at, t0 + Duration::from_secs(6));
        assert_eq!(observed.holder(), Some("other"));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let now = Timestamp::from_second(1_000).unwrap();
        let created = next_spec(None, "me", 15, now);
        assert_eq!(created.holder_identity.as_deref(), Some("me"));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.lease_duration_seconds, Some(15));

        let taken = next_spec(Some(&spec(Some("other"), Some(10))), "me", 15, now);
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));

        let later = Timestamp::from_second(1_002).unwrap();
        let renewed = next_spec(Some(&taken), "me", 15, later);
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(2) && j <= Duration::from_millis(2400), "{j:?}");
        }
    }

    #[test]
    fn identity_is_never_empty() {
        assert!(!default_identity().is_empty());
    }
}
