//! What the compute worker reads of the host's processes and mounts from
//! `/proc`, where no command is needed.

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
