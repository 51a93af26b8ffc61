//! The real host: programs run by argument vector (never a shell string),
//! inside a network namespace when one is configured, within a time limit
//! when one is set.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::command::{CommandError, HostCommands, Output, command_line};

/// Runs real programs, in `netns` when given (through `ip netns exec`).
#[derive(Debug, Clone, Default)]
pub struct RealHost {
    netns: Option<String>,
    timeout: Option<Duration>,
}

impl RealHost {
    /// Commands run in the host's own namespaces.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commands run inside the named network namespace.
    pub fn in_netns(name: &str) -> Self {
        Self {
            netns: Some(name.to_owned()),
            timeout: None,
        }
    }

    /// Each command is killed, and fails, when it runs longer than `limit`.
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The program to start and its arguments: `ip netns exec <ns> program
    /// args…` inside a namespace, else `program args…`.
    fn argv<'a>(&'a self, program: &'a str, args: &[&'a str]) -> (&'a str, Vec<&'a str>) {
        match &self.netns {
            Some(ns) => {
                let mut argv = vec!["netns", "exec", ns.as_str(), program];
                argv.extend(args.iter().copied());
                ("ip", argv)
            }
            None => (program, args.to_vec()),
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
        let (exe, argv) = self.argv(program, args);
        let line = command_line(exe, &argv);
        let io = |what: &str| {
            let line = line.clone();
            let what = what.to_owned();
            move |e: std::io::Error| CommandError::io(line, &what, e)
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
            .map_err(io("could not start"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).await.map_err(io("writing stdin"))?;
        }
        let waited = child.wait_with_output();
        let out = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, waited).await.map_err(|_| {
                CommandError::failed(line.clone(), format!("timed out after {limit:?}"))
            })?,
            None => waited.await,
        }
        .map_err(io("waiting"))?;
        let output = Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if !out.status.success() {
            return Err(CommandError::failed(
                line,
                format!("{}: {}", out.status, output.stderr.trim()),
            ));
        }
        Ok(output)
    }

    fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[tokio::test]
    async fn a_program_that_cannot_start_keeps_its_io_error_as_the_source() {
        let e = RealHost::new()
            .run("/nonexistent/stratus-no-such-program", &["x"], None)
            .await
            .expect_err("no such program");
        assert_eq!(e.command, "/nonexistent/stratus-no-such-program x");
        let source = e.source().expect("an io source");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source}"
        );
    }

    #[tokio::test]
    async fn stdin_reaches_the_program_and_stdout_comes_back() {
        let out = RealHost::new()
            .run("cat", &[], Some(b"through a pipe"))
            .await
            .expect("cat");
        assert_eq!(out.stdout, "through a pipe");
    }

    #[tokio::test]
    async fn a_failure_carries_its_status_and_stderr() {
        let e = RealHost::new()
            .stdout("sh", &["-c", "echo broken >&2; exit 3"])
            .await
            .expect_err("exit 3");
        assert!(e.why.contains("broken") && e.why.contains('3'), "{e}");
        assert!(e.source.is_none());
    }

    #[tokio::test]
    async fn a_command_past_its_limit_is_killed_and_fails() {
        let started = std::time::Instant::now();
        let e = RealHost::new()
            .with_timeout(Duration::from_millis(200))
            .stdout("sleep", &["10"])
            .await
            .expect_err("timed out");
        assert!(e.why.contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
