//! Risk scoring: likelihood x impact, impact uplift from the workload's labels, bands,
//! tolerance and exceptions.

mod finding;
mod score;

pub use finding::{Evidence, ScoredFinding};
pub use score::{RuleAdjustment, ScoringInput, Verdict, impact_uplift, score, sort_findings, verdict};
