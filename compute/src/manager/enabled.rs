//! Whether this host takes new instances. An operator turns it off with
//! `stratus service disable <host>`; it is kept in the state folder so a
//! restarted worker stays disabled, and sent with every capacity report so a
//! restarted scheduler learns it again.

use std::sync::PoisonError;

use serde::{Deserialize, Serialize};
use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::SetHostEnabled;
use stratus_rpc::wire::scheduler::HostReport;
use tracing::{info, warn};

use super::ComputeManager;

/// The operator's switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEnabled {
    /// Takes new instances.
    pub enabled: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Default for HostEnabled {
    fn default() -> Self {
        Self {
            enabled: true,
            reason: None,
        }
    }
}

impl ComputeManager {
    /// Whether this host takes new instances, and why not.
    pub fn host_enabled(&self) -> HostEnabled {
        self.enabled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the switch a previous run left; enabled when there is none.
    pub(super) async fn load_host_enabled(&self) {
        let path = &self.parts.host_state_file;
        let loaded = match tokio::fs::read(path).await {
            Ok(bytes) => match serde_json::from_slice::<HostEnabled>(&bytes) {
                Ok(state) => state,
                Err(e) => {
                    warn!(file = %path.display(), error = %error_chain(&e), "unreadable host state; taking instances");
                    HostEnabled::default()
                }
            },
            Err(_) => HostEnabled::default(),
        };
        if !loaded.enabled {
            info!(
                reason = loaded.reason.as_deref().unwrap_or(""),
                "this host is disabled for new instances"
            );
        }
        *self.enabled.lock().unwrap_or_else(PoisonError::into_inner) = loaded;
    }

    /// Turns the switch, keeps it on disk, and tells the schedulers at once.
    pub async fn set_host_enabled(
        &self,
        ctx: &RequestContext,
        request: &SetHostEnabled,
    ) -> std::io::Result<HostReport> {
        let state = HostEnabled {
            enabled: request.enabled,
            reason: request.reason.clone().filter(|_| !request.enabled),
        };
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        let path = &self.parts.host_state_file;
        let part = path.with_extension("part");
        tokio::fs::write(&part, bytes).await?;
        tokio::fs::rename(&part, path).await?;
        *self.enabled.lock().unwrap_or_else(PoisonError::into_inner) = state;
        info!(
            enabled = request.enabled,
            reason = request.reason.as_deref().unwrap_or(""),
            "host switched"
        );
        let report = self.host_report().await;
        if let Err(e) = self.parts.scheduler.update_host(ctx, &report).await {
            warn!(error = %error_chain(&e), "could not tell the schedulers; the next periodic report will");
        }
        Ok(report)
    }
}
