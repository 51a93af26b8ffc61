//! The `[scheduler]` section of the configuration.

use serde::{Deserialize, Serialize};

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Seconds since its last report after which a host counts as down.
    pub service_down_time_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            service_down_time_secs: 60,
        }
    }
}
