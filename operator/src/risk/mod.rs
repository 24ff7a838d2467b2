//! Risk scoring: likelihood x impact, impact uplift from the workload's labels, bands,
//! tolerance and exceptions.

mod finding;

pub use finding::{Evidence, ScoredFinding};
