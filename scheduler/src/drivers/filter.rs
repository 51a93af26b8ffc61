//! The filter driver: the configured filters, then the weigher.

use stratus_rpc::wire::scheduler::HostReport;

use super::{Choose, Driver, min_by_key};
use crate::config::{SchedulerConfig, Weigher};
use crate::filters::{self, Filter, RETRY};

/// The retry filter, `config.filters` in order, then `config.weigher`.
pub fn driver(config: &SchedulerConfig) -> Driver {
    let mut list: Vec<Box<dyn Filter>> = vec![Box::new(RETRY)];
    list.extend(config.filters.iter().map(|&k| filters::build(k, config)));
    Driver {
        filters: list,
        chooser: Box::new(RamWeigher(config.weigher)),
    }
}

/// Weighs hosts by free RAM (which may be negative with over-commit).
#[derive(Debug)]
struct RamWeigher(Weigher);

fn free_ram(host: &HostReport) -> i128 {
    i128::from(host.memory_mb) - i128::from(host.memory_mb_used)
}

impl Choose for RamWeigher {
    fn choose<'h>(&self, hosts: &[&'h HostReport]) -> &'h HostReport {
        match self.0 {
            Weigher::Spread => min_by_key(hosts, |h| -free_ram(h)),
            Weigher::Pack => min_by_key(hosts, free_ram),
        }
    }
}
