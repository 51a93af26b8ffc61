//! The simple driver: the least-loaded host with room, as Nova's
//! SimpleScheduler (fewest vCPUs in use, then least RAM in use).

use stratus_rpc::wire::scheduler::HostReport;

use super::{Choose, Driver, min_by_key};
use crate::config::{FilterKind, SchedulerConfig};
use crate::filters::{self, AVAILABILITY_ZONE, COMPUTE, RETRY};

/// Enabled hosts of the zone with room for the flavor, least loaded first.
pub fn driver(config: &SchedulerConfig) -> Driver {
    Driver {
        filters: vec![
            Box::new(RETRY),
            Box::new(COMPUTE),
            Box::new(AVAILABILITY_ZONE),
            filters::build(FilterKind::RamFilter, config),
            filters::build(FilterKind::CoreFilter, config),
        ],
        chooser: Box::new(LeastLoaded),
    }
}

#[derive(Debug)]
struct LeastLoaded;

impl Choose for LeastLoaded {
    fn choose<'h>(&self, hosts: &[&'h HostReport]) -> &'h HostReport {
        min_by_key(hosts, |h| (h.vcpus_used, h.memory_mb_used))
    }
}
