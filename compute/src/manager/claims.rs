//! Claims: a build counts against this host from its first step, and is
//! refused when it would go over the limits the scheduler sent, so two
//! schedulers (or two requests) cannot over-commit the host between reports.

use std::sync::PoisonError;

use stratus_rpc::wire::compute::RunInstance;

use super::ComputeManager;

impl ComputeManager {
    /// Counts `request` against this host, or says what does not fit.
    pub(super) fn claim(&self, request: &RunInstance) -> Result<(), String> {
        let mut flavors = self.flavors.lock().unwrap_or_else(PoisonError::into_inner);
        let id = request.instance_id;
        let wanted = &request.flavor;
        if let Some(limits) = request.placement.limits {
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
