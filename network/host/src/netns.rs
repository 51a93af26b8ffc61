//! The network namespace guest networking lives in when stratus keeps it
//! off the host's own network (the all-in-one's default): made once, with
//! loopback up, forwarding on, and the metadata address on its loopback so
//! guests reach the metadata service without any NAT.

use crate::{CommandError, HostCommands, RealHost};

/// The link-local address guests ask for metadata.
pub const METADATA_ADDRESS: &str = "169.254.169.254";

/// Makes `name` if missing and prepares it; safe to repeat.
pub async fn prepare(name: &str) -> Result<RealHost, CommandError> {
    let host = RealHost::new();
    let exists = host
        .run("ip", &["netns", "list"], None)
        .await?
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name));
    if !exists {
        match host.run("ip", &["netns", "add", name], None).await {
            Ok(_) => {}
            // Another stratus process made it first.
            Err(e) if e.why.contains("File exists") => {}
            Err(e) => return Err(e),
        }
    }
    let inside = RealHost::in_netns(name);
    inside.run("ip", &["link", "set", "lo", "up"], None).await?;
    inside
        .run("sysctl", &["-qw", "net.ipv4.ip_forward=1"], None)
        .await?;
    let address = format!("{METADATA_ADDRESS}/32");
    match inside
        .run("ip", &["addr", "add", &address, "dev", "lo"], None)
        .await
    {
        Ok(_) => {}
        Err(e) if e.why.contains("File exists") || e.why.contains("already assigned") => {}
        Err(e) => return Err(e),
    }
    Ok(inside)
}

/// Kills what still runs in `name` and deletes it; for clean-up paths, so
/// failures are ignored.
pub fn remove(name: &str) {
    use std::process::Command;
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).status();
}
