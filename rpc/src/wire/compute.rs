//! Messages to compute workers.

use serde::{Deserialize, Serialize};

use super::ids::InstanceId;

/// Build and start one instance on the receiving host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInstance {
    /// The instance to build.
    pub instance_id: InstanceId,
    /// The instance type (flavor) name, e.g. `m1.tiny`.
    pub instance_type: String,
    /// The image to boot, `ami-…`.
    pub image_id: String,
}

/// Names one instance for terminate, reboot, stop, start and console output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRef {
    /// The instance.
    pub instance_id: InstanceId,
}
