//! Building the Rego input document for one workload (the contract is "The input document" in
//! `policies/README.md`; its JSON Schema is `policies/input.schema.json`).
//!
//! The builder is pure: it sees the cluster only through [`ObjectSource`], so the operator (over
//! its watch caches) and `crmrisk scan` (over an [`ObjectSet`] filled from manifest files) produce
//! the same document for the same objects, and therefore the same findings.
//!
//! ```text
//! objects ──> ObjectSource ──> build(&Workload, &dyn ObjectSource) ──> WorkloadContext ──> engine::Input
//! ```
//!
//! Every lookup the builder makes is scoped to the workload's namespace, to the cluster-wide
//! objects filed under its namespace or ServiceAccount ([`reach`]: ClusterRoleBindings, Velero
//! Schedules), or to small cluster-wide sets (ClusterRoles, StorageClasses), so building the
//! context of every workload in a 10,000-workload cluster stays linear in the number of workloads.

mod backup;
mod build;
mod containers;
pub mod cron;
mod document;
pub mod duration;
mod error;
mod network;
mod objects;
mod rbac;
pub(crate) mod reach;
pub mod selector;
mod storage;
mod strings;
mod workload;

pub use build::build;
pub use document::*;
pub use error::ContextError;
pub use objects::{BackupTools, Inserted, ObjectKey, ObjectSet, ObjectSource};
pub use workload::Workload;

pub(crate) use backup::{namespace_key, schedule_scope};
pub(crate) use rbac::{cluster_binding_scope, service_account_keys};
