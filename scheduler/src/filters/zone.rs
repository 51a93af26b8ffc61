//! Keeps hosts in the requested availability zone.

use stratus_rpc::wire::scheduler::HostReport;

use super::Filter;
use crate::request::RequestSpec;

/// Hosts in the requested zone; every host when none was requested.
#[derive(Debug)]
pub struct AvailabilityZoneFilter;

impl Filter for AvailabilityZoneFilter {
    fn name(&self) -> &'static str {
        "AvailabilityZoneFilter"
    }

    fn passes(&self, host: &HostReport, spec: &RequestSpec<'_>) -> bool {
        spec.zone.is_none_or(|zone| host.availability_zone == zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_test_support::fixtures::{host_report as report, sized_instance as instance};

    #[test]
    fn only_hosts_of_the_requested_zone_pass() {
        let east = report("a", "east", 2, 2048);
        let west = report("b", "west", 2, 2048);
        let mut inst = instance(1, 512, 1);
        let any = RequestSpec::new(&inst, false).expect("spec");
        assert!(AvailabilityZoneFilter.passes(&east, &any));
        assert!(AvailabilityZoneFilter.passes(&west, &any));
        inst.placement.availability_zone = Some("west".into());
        let spec = RequestSpec::new(&inst, false).expect("spec");
        assert!(!AvailabilityZoneFilter.passes(&east, &spec));
        assert!(AvailabilityZoneFilter.passes(&west, &spec));
    }
}
