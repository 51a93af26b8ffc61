//! `tracing` output: readable lines or JSON, filtered by config or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// The filter could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("log filter {filter:?}: {source}")]
pub struct LogError {
    filter: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber; logs go to stderr so command output on
/// stdout stays clean.
pub fn init(config: &LogConfig) -> Result<(), LogError> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.filter.clone());
    let env_filter = EnvFilter::try_new(&filter).map_err(|source| LogError {
        filter: filter.clone(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        // Reporting a failed log write on stderr panics once stderr is closed
        // (a log pipe that went away): drop the line instead.
        .log_internal_errors(false);
    // A second init (tests) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    Ok(())
}
