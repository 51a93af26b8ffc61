//! RAM, vCPU and disk: a host passes when the flavor fits in what it may
//! hand out (capacity times the allocation ratio) less what is in use.

use stratus_rpc::wire::scheduler::HostReport;

use super::Filter;
use crate::request::RequestSpec;

/// Whether `wanted` fits in `total * ratio - used`.
fn fits(total: u64, used: u64, wanted: u64, ratio: f64) -> bool {
    // f64 is exact for any realistic capacity; floor so a ratio never rounds up.
    let limit = (total as f64 * ratio).floor();
    used as f64 + wanted as f64 <= limit
}

/// What a flavor asks of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Memory, in MiB.
    Ram,
    /// Virtual CPUs.
    Cores,
    /// Root disk, in GiB.
    Disk,
}

/// Hosts with the flavor's share of one resource free.
#[derive(Debug)]
pub struct ResourceFilter {
    /// The resource checked.
    pub resource: Resource,
    /// Its allocation ratio (`ram_allocation_ratio`, `cpu_allocation_ratio`,
    /// `disk_allocation_ratio`).
    pub ratio: f64,
}

impl Filter for ResourceFilter {
    fn name(&self) -> &'static str {
        match self.resource {
            Resource::Ram => "RamFilter",
            Resource::Cores => "CoreFilter",
            Resource::Disk => "DiskFilter",
        }
    }

    fn passes(&self, host: &HostReport, spec: &RequestSpec<'_>) -> bool {
        let flavor = &spec.instance.flavor;
        let (total, used, wanted) = match self.resource {
            Resource::Ram => (host.memory_mb, host.memory_mb_used, flavor.memory_mb),
            Resource::Cores => (
                host.vcpus.into(),
                host.vcpus_used.into(),
                flavor.vcpus.into(),
            ),
            Resource::Disk => (host.disk_gb, host.disk_gb_used, flavor.root_gb),
        };
        fits(total, used, wanted, self.ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_test_support::fixtures::{host_report as report, sized_instance as instance};

    #[test]
    fn ram_over_commit_is_refused_past_the_ratio() {
        let mut host = report("a", "nova", 4, 2048);
        host.memory_mb_used = 2048;
        let inst = instance(1, 1024, 1);
        let spec = RequestSpec::new(&inst, false).expect("spec");
        let ram = |ratio| ResourceFilter {
            resource: Resource::Ram,
            ratio,
        };
        assert!(!ram(1.0).passes(&host, &spec));
        assert!(ram(1.5).passes(&host, &spec));
        host.memory_mb_used = 2049;
        assert!(!ram(1.5).passes(&host, &spec));
    }

    #[test]
    fn vcpus_and_disk_are_checked_the_same_way() {
        let mut host = report("a", "nova", 2, 2048);
        host.vcpus_used = 31;
        host.disk_gb = 20;
        host.disk_gb_used = 19;
        let one = instance(1, 256, 1);
        let two = instance(2, 256, 2);
        let spec_one = RequestSpec::new(&one, false).expect("spec");
        let spec_two = RequestSpec::new(&two, false).expect("spec");
        let cores = ResourceFilter {
            resource: Resource::Cores,
            ratio: 16.0,
        };
        assert!(cores.passes(&host, &spec_one));
        assert!(!cores.passes(&host, &spec_two));
        let disk = ResourceFilter {
            resource: Resource::Disk,
            ratio: 1.0,
        };
        assert!(disk.passes(&host, &spec_one));
        assert!(!disk.passes(&host, &spec_two));
    }
}
