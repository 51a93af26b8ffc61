//! Filters that are one test of a host: enabled, not tried yet, in the
//! requested zone.

use stratus_rpc::wire::scheduler::HostReport;

use super::Filter;
use crate::request::RequestSpec;

/// A filter that is one test of a host against a request.
#[derive(Debug, Clone, Copy)]
pub struct Predicate {
    name: &'static str,
    passes: fn(&HostReport, &RequestSpec<'_>) -> bool,
}

impl Filter for Predicate {
    fn name(&self) -> &'static str {
        self.name
    }

    fn passes(&self, host: &HostReport, spec: &RequestSpec<'_>) -> bool {
        (self.passes)(host, spec)
    }
}

/// Hosts that take new instances (`stratus service disable` turns one off).
pub const COMPUTE: Predicate = Predicate {
    name: "ComputeFilter",
    passes: |host, _| host.enabled,
};

/// Hosts not yet tried for this instance: a host that failed a build is not
/// handed the same instance again.
pub const RETRY: Predicate = Predicate {
    name: "RetryFilter",
    passes: |host, spec| !spec.hosts_tried().contains(&host.host),
};

/// Hosts in the requested zone; every host when none was requested.
pub const AVAILABILITY_ZONE: Predicate = Predicate {
    name: "AvailabilityZoneFilter",
    passes: |host, spec| spec.zone.is_none_or(|zone| host.availability_zone == zone),
};

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
        assert!(AVAILABILITY_ZONE.passes(&east, &any));
        assert!(AVAILABILITY_ZONE.passes(&west, &any));
        inst.placement.availability_zone = Some("west".into());
        let spec = RequestSpec::new(&inst, false).expect("spec");
        assert!(!AVAILABILITY_ZONE.passes(&east, &spec));
        assert!(AVAILABILITY_ZONE.passes(&west, &spec));
    }
}
