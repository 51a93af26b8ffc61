//! Messages to the scheduler, and the compute hosts' reports it keeps.

use serde::{Deserialize, Serialize};

use super::compute::RunInstance;
use super::ids::HostName;

/// Place and start instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunInstances {
    /// The instances of one request, each placed in turn.
    pub instances: Vec<RunInstance>,
    /// The requested availability zone, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// A compute host's capacity and usage; also its heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// The reporting host.
    pub host: HostName,
    /// Its availability zone.
    pub availability_zone: String,
    /// vCPUs in all.
    pub vcpus: u32,
    /// vCPUs given to instances.
    pub vcpus_used: u32,
    /// Memory in MiB in all.
    pub memory_mb: u64,
    /// Memory in MiB given to instances.
    pub memory_mb_used: u64,
    /// Disk in GiB in all.
    pub disk_gb: u64,
    /// Disk in GiB given to instances.
    pub disk_gb_used: u64,
    /// Instances on the host.
    pub running_instances: u32,
    /// `qemu` or `kvm`, or `fake`.
    pub hypervisor_type: String,
}
