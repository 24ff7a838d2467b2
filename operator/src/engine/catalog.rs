//! Rule metadata: kept once (in `policies/metadata.json` for the built-in library, in each
//! custom module's `metadata` object) and read by the engine, the scorer and the docs.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{Category, Control, Objective};

/// What is known about one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleMeta {
    /// Shared (`Arc<str>`) with every finding of the rule, which repeat it thousands of times.
    pub title: Arc<str>,
    pub category: Category,
    pub control: Control,
    pub objective: Objective,
    /// Default likelihood, 1-5.
    pub likelihood: u8,
    /// Default impact, 1-5, before the uplift from the workload's labels.
    pub impact: u8,
    #[serde(default = "empty")]
    pub remediation: Arc<str>,
    #[serde(default)]
    pub description: String,
}

fn empty() -> Arc<str> {
    Arc::from("")
}

/// All known rules by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCatalog {
    rules: BTreeMap<String, RuleMeta>,
}

#[derive(Deserialize)]
struct MetadataFile {
    crmrisk: MetadataRoot,
}

#[derive(Deserialize)]
struct MetadataRoot {
    rules: BTreeMap<String, RuleMeta>,
}

/// Why a metadata document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("rule metadata is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("rule {id}: {what} must be between 1 and 5, got {value}")]
    OutOfRange { id: String, what: &'static str, value: u8 },
}

impl RuleCatalog {
    /// Parse `metadata.json` (`{"crmrisk": {"rules": {...}}}`).
    pub fn from_metadata_json(json: &str) -> Result<RuleCatalog, CatalogError> {
        let file: MetadataFile = serde_json::from_str(json)?;
        let mut catalog = RuleCatalog::default();
        catalog.extend(file.crmrisk.rules)?;
        Ok(catalog)
    }

    /// Add rules, checking their ranges.
    pub fn extend(&mut self, rules: BTreeMap<String, RuleMeta>) -> Result<(), CatalogError> {
        for (id, meta) in rules {
            for (what, value) in [("likelihood", meta.likelihood), ("impact", meta.impact)] {
                if !(1..=5).contains(&value) {
                    return Err(CatalogError::OutOfRange { id, what, value });
                }
            }
            self.rules.insert(id, meta);
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&RuleMeta> {
        self.rules.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &RuleMeta)> {
        self.rules.iter()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
