//! crm-risk-operator: CRM workload risk management as policy-as-code.
//!
//! Data flow (see `../shared/DESIGN.md`): objects (from watch caches or manifest files) ->
//! [`context`] builds one Rego input per workload -> [`engine`] evaluates the Rego library ->
//! [`risk`] scores findings -> writers (status, reports, events, metrics, CLI output).

pub mod api;
pub mod assess;
pub mod cli;
pub mod cluster;
pub mod context;
pub mod controller;
pub mod engine;
pub mod leader;
pub mod model;
pub mod risk;
pub mod run;
pub mod scan;
pub mod telemetry;
