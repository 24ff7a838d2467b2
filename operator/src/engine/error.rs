//! Engine errors. Compile errors carry the source, line and column so they can be shown as
//! they are in a policy's `Ready` condition.

use std::fmt;

/// Where a Rego problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The module label: a library path, or `customPolicies[<name>]`.
    pub source: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// regorus's message, which also quotes the offending line.
    pub message: String,
}

impl CompileError {
    /// Build from a regorus error, picking `<source>:<line>:<col>` out of its text.
    pub fn from_regorus(source: &str, err: &dyn fmt::Display) -> CompileError {
        let message = err.to_string();
        let (line, column) = find_position(&message, source).unzip();
        CompileError { source: source.to_owned(), line, column, message: message.trim().to_owned() }
    }

    /// Without a position (e.g. a missing rule detected after parsing).
    pub fn plain(source: &str, message: impl Into<String>) -> CompileError {
        CompileError { source: source.to_owned(), line: None, column: None, message: message.into() }
    }
}

/// Finds "<source>:<line>:<col>" in a regorus message.
fn find_position(message: &str, source: &str) -> Option<(u32, u32)> {
    let at = message.find(&format!("{source}:"))? + source.len() + 1;
    let mut parts = message[at..].splitn(3, ':');
    let line = parts.next()?.trim().parse().ok()?;
    let col = parts.next()?.trim().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((line, col))
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.message.lines().next().unwrap_or_default();
        match (self.line, self.column) {
            (Some(l), Some(c)) if first.contains(&format!("{}:{l}:{c}", self.source)) => f.write_str(first),
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {first}", self.source),
            _ => write!(f, "{}: {first}", self.source),
        }
    }
}

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("policy does not compile: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Compile(Vec<CompileError>),
    #[error("built-in rule metadata: {0}")]
    Catalog(#[from] super::catalog::CatalogError),
    #[error("evaluation exceeded its time limit of {0:?}")]
    Timeout(std::time::Duration),
    #[error("evaluation exceeded its limit of {0} VM instructions")]
    InstructionLimit(usize),
    #[error("input document is {size} bytes, over the limit of {limit}")]
    InputTooLarge { size: usize, limit: usize },
    #[error("evaluation failed: {0}")]
    Eval(String),
    #[error("policy returned a malformed finding: {0}")]
    MalformedFinding(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_parsed_from_regorus_style_messages() {
        let e = CompileError::from_regorus("customPolicies[x]", &"customPolicies[x]:7:12: error: unexpected token");
        assert_eq!((e.line, e.column), (Some(7), Some(12)));
        assert_eq!(e.to_string(), "customPolicies[x]:7:12: error: unexpected token");
        let e = CompileError::from_regorus("a.rego", &"something else");
        assert_eq!((e.line, e.column), (None, None));
        assert_eq!(e.to_string(), "a.rego: something else");
    }
}
