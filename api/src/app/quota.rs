//! Quotas: how many of the instances asked for fit what a project may hold.

use stratus_rpc::wire::compute::Flavor;

use crate::config::Quotas;
use crate::db::instances::Usage;

/// What a launch would exceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// Not even the minimum fits the vCPU limit.
    #[error("{limit} vCPUs allowed, {used} in use")]
    Vcpus {
        /// The limit.
        limit: u64,
        /// In use.
        used: u64,
    },
    /// Not even the minimum fits the memory limit.
    #[error("{limit} MiB allowed, {used} MiB in use")]
    Memory {
        /// The limit, MiB.
        limit: u64,
        /// In use, MiB.
        used: u64,
    },
    /// Not even the minimum fits the instance limit.
    #[error("{asked} instances asked for, {limit} allowed, {used} in use")]
    Instances {
        /// The minimum asked for.
        asked: u64,
        /// The limit.
        limit: u64,
        /// In use.
        used: u64,
    },
}

/// How many of `max` instances of `flavor` fit `quotas` beside `usage`; an
/// error when not `min`.
pub fn fit(
    quotas: &Quotas,
    usage: Usage,
    flavor: &Flavor,
    min: u64,
    max: u64,
) -> Result<u64, QuotaError> {
    let room = |limit: u64, used: u64, each: u64| {
        limit
            .saturating_sub(used)
            .checked_div(each)
            .unwrap_or(u64::MAX)
    };
    let by_count = room(quotas.instances, usage.instances, 1);
    let by_vcpus = room(quotas.vcpus, usage.vcpus, u64::from(flavor.vcpus));
    let by_ram = room(quotas.memory_mb, usage.memory_mb, flavor.memory_mb);
    let fits = max.min(by_count).min(by_vcpus).min(by_ram);
    if fits >= min {
        Ok(fits)
    } else if by_vcpus < min {
        Err(QuotaError::Vcpus {
            limit: quotas.vcpus,
            used: usage.vcpus,
        })
    } else if by_ram < min {
        Err(QuotaError::Memory {
            limit: quotas.memory_mb,
            used: usage.memory_mb,
        })
    } else {
        Err(QuotaError::Instances {
            asked: min,
            limit: quotas.instances,
            used: usage.instances,
        })
    }
}
