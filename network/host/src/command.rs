//! The host seam: one narrow trait every host program runs through, the
//! error a failed run gives, and the check that keeps interface names
//! harmless. The real implementation is in `real.rs`, the recording fake in
//! `fake.rs`.

use async_trait::async_trait;

/// A host command failed to start, timed out or exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {why}")]
pub struct CommandError {
    /// The command line (or the step), for the reader; never re-run through
    /// a shell.
    pub command: String,
    /// Exit status and stderr, or what went wrong.
    pub why: String,
    /// The I/O error underneath, when the command could not be run at all.
    #[source]
    pub source: Option<std::io::Error>,
}

impl CommandError {
    /// `command` ran and failed: `why` is its exit status and stderr, or
    /// the check it did not pass.
    pub fn failed(command: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            why: why.into(),
            source: None,
        }
    }

    /// `command` could not be run: `what` it was doing when `source` failed.
    pub fn io(command: impl Into<String>, what: &str, source: std::io::Error) -> Self {
        Self {
            command: command.into(),
            why: what.to_owned(),
            source: Some(source),
        }
    }
}

/// What a command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs programs on the host.
#[async_trait]
pub trait HostCommands: Send + Sync + std::fmt::Debug {
    /// Runs `program` with `args`, feeding `stdin`; an exit other than 0 is
    /// an error carrying stderr.
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, CommandError>;

    /// The network namespace commands run in, if any.
    fn netns(&self) -> Option<&str>;

    /// Runs `program` with `args` and no input; what it printed on stdout.
    async fn stdout(&self, program: &str, args: &[&str]) -> Result<String, CommandError> {
        Ok(self.run(program, args, None).await?.stdout)
    }
}

/// `program` and `args` as one line, for errors and logs.
pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks an interface name: 1 to 15 characters of letters, digits, `-`,
/// `_` and `.` (the kernel's limit; nothing a command could misread).
pub fn check_ifname(name: &str) -> Result<(), CommandError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::failed(
            "(interface name check)",
            format!("invalid interface name {name:?}"),
        ))
    }
}
