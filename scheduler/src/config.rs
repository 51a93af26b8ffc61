//! The `[scheduler]` section of the configuration.

use serde::{Deserialize, Serialize};

/// How hosts are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    /// A random up host, whatever zone was asked for (Nova's chance scheduler).
    Chance,
    /// A random up host in the requested availability zone.
    Zone,
    /// The least-loaded up host with room: fewest vCPUs in use, then least RAM.
    Simple,
    /// The configured filters, then the weigher.
    Filter,
}

/// The filters the filter driver can run, by Nova's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterKind {
    /// Hosts in the requested availability zone.
    AvailabilityZoneFilter,
    /// Hosts with the flavor's RAM free, after `ram_allocation_ratio`.
    RamFilter,
    /// Hosts with the flavor's vCPUs free, after `cpu_allocation_ratio`.
    CoreFilter,
    /// Hosts with the flavor's root disk free, after `disk_allocation_ratio`.
    DiskFilter,
    /// Hosts an operator has not disabled.
    ComputeFilter,
    /// Hosts whose architecture and hypervisor match the image's properties.
    ImagePropertiesFilter,
}

impl FilterKind {
    /// Every filter, in the default order (cheap and selective first).
    pub const ALL: [FilterKind; 6] = [
        Self::ComputeFilter,
        Self::AvailabilityZoneFilter,
        Self::ImagePropertiesFilter,
        Self::RamFilter,
        Self::CoreFilter,
        Self::DiskFilter,
    ];
}

/// How the filter driver orders the hosts that pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weigher {
    /// Most free RAM first: instances spread over hosts.
    Spread,
    /// Least free RAM first: hosts fill one by one.
    Pack,
}

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Seconds since its last report after which a host counts as down.
    pub service_down_time_secs: u64,
    /// `chance`, `zone`, `simple` or `filter`.
    pub driver: DriverKind,
    /// Hosts an instance may be tried on before it goes to error.
    pub max_attempts: u32,
    /// The filter driver's filters, run in this order.
    pub filters: Vec<FilterKind>,
    /// The filter driver's weigher.
    pub weigher: Weigher,
    /// Virtual RAM per physical RAM a host may hand out.
    pub ram_allocation_ratio: f64,
    /// vCPUs per physical CPU a host may hand out.
    pub cpu_allocation_ratio: f64,
    /// Disk a host may hand out per GiB it has.
    pub disk_allocation_ratio: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            service_down_time_secs: 60,
            driver: DriverKind::Filter,
            max_attempts: 3,
            filters: FilterKind::ALL.to_vec(),
            weigher: Weigher::Spread,
            ram_allocation_ratio: 1.5,
            cpu_allocation_ratio: 16.0,
            disk_allocation_ratio: 1.0,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// No attempt at all would be made.
    #[error("[scheduler] max_attempts must be at least 1")]
    NoAttempts,
    /// An allocation ratio that is zero, negative or not a number.
    #[error("[scheduler] {name} must be a positive number, not {ratio}")]
    Ratio {
        /// The setting.
        name: &'static str,
        /// Its value.
        ratio: f64,
    },
    /// Every host would count as down.
    #[error("[scheduler] service_down_time_secs must be at least 1")]
    NoDownTime,
}

impl SchedulerConfig {
    /// Refuses settings that would make every request fail.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::NoAttempts);
        }
        for (name, ratio) in [
            ("ram_allocation_ratio", self.ram_allocation_ratio),
            ("cpu_allocation_ratio", self.cpu_allocation_ratio),
            ("disk_allocation_ratio", self.disk_allocation_ratio),
        ] {
            if !(ratio.is_finite() && ratio > 0.0) {
                return Err(ConfigError::Ratio { name, ratio });
            }
        }
        if self.service_down_time_secs == 0 {
            return Err(ConfigError::NoDownTime);
        }
        Ok(())
    }
}
