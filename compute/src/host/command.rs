//! Running host programs for the compute worker: an argument vector (never
//! a shell string), a timeout, and stderr in the error.

use std::time::Duration;

use tokio::process::Command;

/// A host command failed, timed out or did not start.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {why}")]
pub struct CommandError {
    /// What was being done.
    pub step: String,
    /// Exit status and stderr, or the cause.
    pub why: String,
}

/// How long any one command may take before it is killed (and the step
/// that ran it fails, and cleans up).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a program with an argument vector and a timeout; its stdout.
pub async fn run(program: &str, args: &[&str]) -> Result<String, CommandError> {
    let step = format!("{program} {}", args.join(" "));
    let fail = |why: String| CommandError {
        step: step.clone(),
        why,
    };
    let child = Command::new(program).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| fail(format!("timed out after {COMMAND_TIMEOUT:?}")))?
        .map_err(|e| fail(format!("could not start: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether process `pid` (as a pid file holds it) still runs `program`:
/// a pid file outlives its process, and the number may be reused.
pub fn pid_runs(pid: &str, program: &str) -> bool {
    std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(program))
}

/// Whether `path` is a mount point now.
pub async fn is_mounted(path: &str) -> bool {
    tokio::fs::read_to_string("/proc/self/mounts")
        .await
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(1) == Some(path)))
        .unwrap_or(false)
}
