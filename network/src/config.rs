//! The `[network]` section of the configuration.

use serde::{Deserialize, Serialize};

/// The network service's settings; they arrive with the service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {}
