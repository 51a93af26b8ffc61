//! Replacing a whole nftables table: one `nft -f -` per change, which the
//! kernel applies as one transaction.

use std::sync::Arc;

use crate::{CommandError, HostCommands};

/// Applies `nft` scripts on this host.
#[derive(Debug, Clone)]
pub struct Nft {
    host: Arc<dyn HostCommands>,
}

impl Nft {
    /// Applies through `host`.
    pub fn new(host: Arc<dyn HostCommands>) -> Self {
        Self { host }
    }

    /// Runs `script` (a whole table's delete and re-creation) atomically.
    pub async fn apply(&self, script: &str) -> Result<(), CommandError> {
        self.host
            .run("nft", &["-f", "-"], Some(script.as_bytes()))
            .await
            .map(|_| ())
    }
}
