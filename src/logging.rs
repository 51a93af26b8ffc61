//! `tracing` output: readable lines or JSON, filtered by config or
//! `RUST_LOG`, on stderr and (for the all-in-one) appended to a file; and,
//! for compute workers, the same events as JSON lines on a channel that
//! `stratus_rpc::logs::ship` publishes for `stratus tail`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter could not be parsed.
    #[error("log filter {filter:?}")]
    Filter {
        /// The filter.
        filter: String,
        /// Why.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The log file could not be opened (or its folder made).
    #[error("log file {}", path.display())]
    File {
        /// The file or its folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the all-in-one appends its services' log lines, under the state
/// directory.
pub fn all_in_one_log(state_dir: &Path) -> PathBuf {
    state_dir.join("logs").join("all-in-one.log")
}

/// Where log lines go.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    /// On stderr (every service alone; the all-in-one with `-v`).
    pub stderr: bool,
    /// Appended to this file, made with its folder if missing.
    pub file: Option<&'a Path>,
}

impl Outputs<'_> {
    /// Stderr only: what a service run alone writes.
    pub const STDERR: Outputs<'static> = Outputs {
        stderr: true,
        file: None,
    };
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

/// One formatted output in `format`, with colour codes when `ansi`.
fn layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Reporting a failed log write on stderr panics once stderr is closed
    // (a log pipe that went away): drop the line instead.
    match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .log_internal_errors(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(writer)
            .log_internal_errors(false)
            .boxed(),
    }
}

/// Opens `path` for appending, making its folder first.
fn open_append(path: &Path) -> Result<std::fs::File, LogError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LogError::File { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed(dir))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(failed(path))
}

/// Installs the global subscriber writing to `outputs`; logs go to stderr,
/// never stdout, so command output there stays clean. With `ship`, also
/// returns the JSON lines to publish.
pub fn init(
    config: &LogConfig,
    ship: bool,
    outputs: Outputs<'_>,
) -> Result<Option<mpsc::Receiver<String>>, LogError> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.filter.clone());
    let env_filter = EnvFilter::try_new(&filter).map_err(|source| LogError::Filter {
        filter: filter.clone(),
        source,
    })?;
    // Colour codes only for a terminal: in a file or a pipe they are noise.
    let stderr = outputs.stderr.then(|| {
        layer(
            config.format,
            std::io::stderr().is_terminal(),
            std::io::stderr,
        )
    });
    let file = match outputs.file {
        // Each event is formatted whole, then written with one append.
        Some(path) => Some(layer(config.format, false, Arc::new(open_append(path)?))),
        None => None,
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
        .with(file)
        .with(shipping)
        .try_init();
    Ok(lines)
}
