//! Telemetry: Prometheus metrics, the health/metrics HTTP endpoint and logging setup.
//!
//! Kept apart from the controller so the controller only calls typed methods
//! ([`Metrics::record_policy`], [`Readiness::set_ready`], ...) and never touches label strings or
//! HTTP details; `crmrisk run` wires the three pieces together.

pub mod logging;
pub mod metrics;
pub mod server;

pub use logging::{LogFormat, LoggingError};
pub use metrics::{Metrics, PolicyMetricsSnapshot, WriteKind};
pub use server::{Readiness, ServeError, TelemetryServer, serve};
