//! Logging setup: `tracing` to stderr, as text for people or JSON for log pipelines.
//!
//! Logs go to stderr because stdout belongs to command output (`crmrisk scan -o json` must
//! stay parseable).

use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// The filter used when neither the caller nor `RUST_LOG` says otherwise: our own logs at
/// info, kube's (which logs every watch restart) only when something is wrong.
pub const DEFAULT_FILTER: &str = "info,kube=warn";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (fields flattened), for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (expected text or json)")),
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log filter {filter:?}: {message}")]
    InvalidFilter { filter: String, message: String },
}

/// Set once a subscriber is in place (ours or someone else's).
static INITIALISED: Mutex<bool> = Mutex::new(false);

/// Installs the global `tracing` subscriber.
///
/// `filter` uses the `tracing_subscriber::EnvFilter` syntax (an empty string means
/// [`DEFAULT_FILTER`]); a non-empty `RUST_LOG` overrides it, so an operator can turn on debug
/// logs without changing the deployment's arguments.
///
/// Only the first successful call does anything; later calls (tests call this repeatedly)
/// return `Ok(())`. If something else already installed a global subscriber, that one is kept.
/// An invalid filter is an error and leaves logging uninitialised, so the caller can report it
/// and retry with the default.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    // A panic while holding this lock cannot leave anything half-done that matters.
    let mut initialised = INITIALISED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *initialised {
        return Ok(());
    }
    let (source, env_filter) = build_filter(filter)?;
    // Colours only for a person at a terminal; escape codes are noise in collected pod logs.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr).with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    *initialised = true;
    match installed {
        Ok(()) => tracing::debug!(filter = %source, ?format, "logging initialised"),
        // Someone (a test harness, a host application) got there first: theirs stays.
        Err(e) => tracing::debug!(error = %e, "a tracing subscriber was already installed; keeping it"),
    }
    Ok(())
}

/// The effective filter: `RUST_LOG` when set and non-empty, else `filter`, else the default.
fn build_filter(filter: &str) -> Result<(String, EnvFilter), LoggingError> {
    let source = filter_source(std::env::var(EnvFilter::DEFAULT_ENV).ok(), filter);
    let env_filter = EnvFilter::try_new(&source)
        .map_err(|e| LoggingError::InvalidFilter { filter: source.clone(), message: e.to_string() })?;
    Ok((source, env_filter))
}

fn filter_source(env: Option<String>, filter: &str) -> String {
    match env {
        Some(env) if !env.trim().is_empty() => env,
        _ if !filter.trim().is_empty() => filter.to_owned(),
        _ => DEFAULT_FILTER.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" Text ".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn default_filter_is_valid() {
        assert!(EnvFilter::try_new(DEFAULT_FILTER).is_ok());
    }

    #[test]
    fn rust_log_wins_over_the_argument_which_wins_over_the_default() {
        assert_eq!(filter_source(Some("debug".into()), "warn"), "debug");
        assert_eq!(filter_source(Some(" ".into()), "warn"), "warn");
        assert_eq!(filter_source(None, ""), DEFAULT_FILTER);
    }

    #[test]
    fn invalid_filters_are_errors() {
        assert!(EnvFilter::try_new("info,crmrisk=loud").is_err());
    }
}
