//! The `[api]` section of the configuration.

use serde::{Deserialize, Serialize};

/// The api service's settings. The EC2 endpoint's settings arrive with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Where the metadata service listens (compute hosts DNAT
    /// 169.254.169.254:80 here).
    pub metadata_listen: String,
    /// Refuse metadata requests without an IMDSv2 token.
    pub metadata_require_token: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            metadata_listen: "0.0.0.0:8775".to_owned(),
            metadata_require_token: false,
        }
    }
}
