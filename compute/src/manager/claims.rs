//! Claims: a build counts against this host from its first step, and is
//! refused when it would go over the limits the scheduler sent, so two
//! schedulers (or two requests) cannot over-commit the host between reports.
//! A start with a new instance type claims its new size the same way.

use std::sync::PoisonError;

use stratus_rpc::wire::compute::{Flavor, RunInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::scheduler::Limits;

use super::ComputeManager;

impl ComputeManager {
    /// Counts `request` against this host, or says what does not fit.
    pub(super) fn claim(&self, request: &RunInstance) -> Result<(), String> {
        let limits = request.placement.limits;
        self.claim_flavor(request.instance_id, &request.flavor, limits)
    }

    /// Counts `wanted` for instance `id` against this host, in place of
    /// what `id` counted before, or says what does not fit `limits` (none:
    /// nothing to check against).
    pub(super) fn claim_flavor(
        &self,
        id: InstanceId,
        wanted: &Flavor,
        limits: Option<Limits>,
    ) -> Result<(), String> {
        let mut flavors = self.flavors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(limits) = limits {
            let (vcpus, memory_mb, disk_gb) = flavors
                .iter()
                .filter(|(other, _)| **other != id)
                .fold((0u64, 0u64, 0u64), |(c, m, d), (_, f)| {
                    (c + u64::from(f.vcpus), m + f.memory_mb, d + f.root_gb)
                });
            for (what, used, want, limit) in [
                ("vCPUs", vcpus, u64::from(wanted.vcpus), limits.vcpus),
                ("MiB of RAM", memory_mb, wanted.memory_mb, limits.memory_mb),
                ("GiB of disk", disk_gb, wanted.root_gb, limits.disk_gb),
            ] {
                if used + want > limit {
                    return Err(format!(
                        "not enough room: {want} {what} wanted, {used} of {limit} in use"
                    ));
                }
            }
        }
        flavors.insert(id, wanted.clone());
        Ok(())
    }
}
