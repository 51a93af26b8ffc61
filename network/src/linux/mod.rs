//! Host commands behind one narrow trait: the real implementation runs a
//! program with an argument vector (inside a network namespace when one is
//! configured); the fake records calls and answers from a script.

pub mod bridge;
pub mod iptables;
pub mod isolation;
pub mod netns;
pub mod nft;

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// A host command failed to start or exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {why}")]
pub struct CommandError {
    /// The command line, for the reader (never re-run through a shell).
    pub command: String,
    /// Exit status and stderr, or why it did not start.
    pub why: String,
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
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs real programs, in `netns` when given (through `ip netns exec`).
#[derive(Debug, Clone, Default)]
pub struct RealHost {
    netns: Option<String>,
}

impl RealHost {
    /// Commands run in the host's own namespaces.
    pub fn new() -> Self {
        Self { netns: None }
    }

    /// Commands run inside the named network namespace.
    pub fn in_netns(name: &str) -> Self {
        Self {
            netns: Some(name.to_owned()),
        }
    }
}

#[async_trait]
impl HostCommands for RealHost {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, CommandError> {
        let mut argv: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["netns", "exec", ns.as_str(), program]);
        }
        let (exe, argv) = if self.netns.is_some() {
            argv.extend(args.iter().copied());
            ("ip", argv)
        } else {
            (program, args.to_vec())
        };
        let line = command_line(exe, &argv);
        let fail = |why: String| CommandError {
            command: line.clone(),
            why,
        };
        let mut child = tokio::process::Command::new(exe)
            .args(&argv)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("could not start: {e}")))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input)
                .await
                .map_err(|e| fail(format!("writing stdin: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting: {e}")))?;
        let output = Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if !out.status.success() {
            return Err(fail(format!("{}: {}", out.status, output.stderr.trim())));
        }
        Ok(output)
    }

    fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }
}

/// Records every command; answers with scripted outputs, else empty success.
#[derive(Debug, Default)]
pub struct FakeHost {
    calls: Mutex<Vec<Vec<String>>>,
    stdins: Mutex<Vec<String>>,
    answers: Mutex<VecDeque<(String, Result<Output, String>)>>,
}

impl FakeHost {
    /// A fake with no scripted answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next call of `program` answers `answer` (an `Err` becomes a
    /// failed command with that stderr).
    pub fn answer(&self, program: &str, answer: Result<&str, &str>) {
        let answer = answer
            .map(|out| Output {
                stdout: out.to_owned(),
                stderr: String::new(),
            })
            .map_err(str::to_owned);
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back((program.to_owned(), answer));
    }

    /// Every command run so far, program first.
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What was fed to commands' stdin, in order.
    pub fn stdins(&self) -> Vec<String> {
        self.stdins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl HostCommands for FakeHost {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, CommandError> {
        let mut call = vec![program.to_owned()];
        call.extend(args.iter().map(|a| (*a).to_owned()));
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(call);
        if let Some(input) = stdin {
            self.stdins
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(String::from_utf8_lossy(input).into_owned());
        }
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = answers.iter().position(|(p, _)| p == program);
        match next.and_then(|i| answers.remove(i)) {
            Some((_, Ok(out))) => Ok(out),
            Some((_, Err(stderr))) => Err(CommandError {
                command: command_line(program, args),
                why: stderr,
            }),
            None => Ok(Output::default()),
        }
    }

    fn netns(&self) -> Option<&str> {
        None
    }
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
        Err(CommandError {
            command: String::from("(interface name check)"),
            why: format!("invalid interface name {name:?}"),
        })
    }
}
