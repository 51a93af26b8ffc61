//! `tracing` output: readable lines or JSON, filtered by config or
//! `RUST_LOG`; and, for compute workers, the same events as JSON lines on a
//! channel that `stratus_rpc::logs::ship` publishes for `stratus tail`.

use std::io::IsTerminal;

use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// The filter could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("log filter {filter:?}")]
pub struct LogError {
    filter: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Log lines waiting to be shipped; a full channel drops lines.
const SHIP_BUFFER: usize = 10_000;

/// Hands each formatted event to the shipping channel.
#[derive(Clone)]
struct Shipper(mpsc::Sender<String>);

/// One event's line, sent when the formatter is done with it.
struct Line {
    to: mpsc::Sender<String>,
    bytes: Vec<u8>,
}

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.bytes).trim_end().to_owned();
        if !text.is_empty() {
            // Never block a worker for a log line.
            let _ = self.to.try_send(text);
        }
    }
}

impl<'a> MakeWriter<'a> for Shipper {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            to: self.0.clone(),
            bytes: Vec::new(),
        }
    }
}

/// Installs the global subscriber; logs go to stderr so command output on
/// stdout stays clean. With `ship`, also returns the JSON lines to publish.
pub fn init(config: &LogConfig, ship: bool) -> Result<Option<mpsc::Receiver<String>>, LogError> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.filter.clone());
    let env_filter = EnvFilter::try_new(&filter).map_err(|source| LogError {
        filter: filter.clone(),
        source,
    })?;
    // Reporting a failed log write on stderr panics once stderr is closed
    // (a log pipe that went away): drop the line instead.
    let stderr = match config.format {
        // Colour codes only for a terminal: in a file or a pipe they are noise.
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .boxed(),
    };
    let (shipping, lines) = if ship {
        let (tx, rx) = mpsc::channel(SHIP_BUFFER);
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(Shipper(tx))
            .log_internal_errors(false);
        (Some(layer), Some(rx))
    } else {
        (None, None)
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(env_filter)
        .with(stderr)
        .with(shipping)
        .try_init();
    Ok(lines)
}
