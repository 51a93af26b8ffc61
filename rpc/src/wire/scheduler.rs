//! Messages to the scheduler, the compute hosts' reports it keeps, and the
//! placement that travels with an instance while it is being placed.

use serde::{Deserialize, Serialize};

use super::compute::RunInstance;
use super::ids::HostName;

/// Place and start instances: each one is placed in turn, and what it takes
/// counts against its host before the next is placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunInstances {
    /// The instances of one request (MinCount..MaxCount of them), or one
    /// instance a compute host handed back for another try.
    pub instances: Vec<RunInstance>,
}

/// How an instance is being placed. It travels with the instance so a host
/// that cannot build it can hand it back to the scheduler for another host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The requested availability zone; `zone:host` forces a host (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The hosts tried so far, in order; the last one is building it now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts_tried: Vec<HostName>,
    /// Why each host that handed it back could not build it, in
    /// `hosts_tried`'s order: the reason alone, as a client may read it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// What the chosen host may hand out in all (its capacity times the
    /// allocation ratios); the host refuses a build that would go over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// Resource ceilings a compute host claims against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// vCPUs.
    pub vcpus: u64,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Disk in GiB.
    pub disk_gb: u64,
}

fn enabled_default() -> bool {
    true
}

fn architecture_default() -> String {
    std::env::consts::ARCH.to_owned()
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
    /// vCPUs given to instances (builds in progress included).
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
    /// The guests' CPU architecture (`x86_64`, `aarch64`).
    #[serde(default = "architecture_default")]
    pub architecture: String,
    /// Whether it takes new instances (`stratus service disable` clears it).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Why an operator disabled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

/// A host as a scheduler sees it (`stratus service list`, availability zones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// Its last report, with what was placed on it since.
    pub report: HostReport,
    /// Reported within `service_down_time`.
    pub up: bool,
    /// Seconds since its last report.
    pub last_report_secs: u64,
}
