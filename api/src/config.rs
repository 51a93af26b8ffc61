//! The `[api]` section of the configuration.

use serde::{Deserialize, Serialize};

/// The api service's settings. The EC2 endpoint's settings arrive with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {}
