//! Reading and atomically replacing the stratus part of the filter table:
//! one `iptables-restore --noflush` per change, under a host-wide lock (a
//! lock file, so separate processes on one host queue too).

use std::path::PathBuf;
use std::sync::Arc;

use crate::{CommandError, HostCommands};

/// Applies filter-table text on this host.
#[derive(Debug, Clone)]
pub struct Iptables {
    host: Arc<dyn HostCommands>,
    lock_path: PathBuf,
}

impl Iptables {
    /// Applies through `host`; the lock file sits in `lock_dir`, one per
    /// network namespace.
    pub fn new(host: Arc<dyn HostCommands>, lock_dir: PathBuf) -> Self {
        let name = match host.netns() {
            Some(ns) => format!("stratus-iptables-{ns}.lock"),
            None => "stratus-iptables.lock".to_owned(),
        };
        Self {
            lock_path: lock_dir.join(name),
            host,
        }
    }

    /// Runs `change(current filter table text)` and restores what it
    /// returns, holding the host-wide lock from the read to the write.
    pub async fn update<F>(&self, change: F) -> Result<(), CommandError>
    where
        F: FnOnce(&str) -> Option<String> + Send,
    {
        self.update_table("filter", change).await
    }

    /// As [`Iptables::update`], for any table (`filter`, `nat`).
    pub async fn update_table<F>(&self, table: &str, change: F) -> Result<(), CommandError>
    where
        F: FnOnce(&str) -> Option<String> + Send,
    {
        let lock_path = self.lock_path.clone();
        let lock = tokio::task::spawn_blocking(move || {
            if let Some(dir) = lock_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| lock_error(&self.lock_path, std::io::Error::other(e)))?
        .map_err(|e| lock_error(&self.lock_path, e))?;
        let saved = self.host.run("iptables-save", &["-t", table], None).await?;
        let result = match change(&saved.stdout) {
            Some(text) => self
                .host
                .run(
                    "iptables-restore",
                    &["-w", "--noflush"],
                    Some(text.as_bytes()),
                )
                .await
                .map(|_| ()),
            None => Ok(()),
        };
        drop(lock);
        result
    }
}

fn lock_error(path: &std::path::Path, source: std::io::Error) -> CommandError {
    CommandError::io(
        format!("lock {}", path.display()),
        "could not take the lock",
        source,
    )
}
