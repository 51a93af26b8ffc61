//! Scheduler drivers: each is a list of filters and a way to choose among
//! the hosts that pass them.

mod chance;
mod filter;
mod simple;
mod zone;

use stratus_rpc::wire::scheduler::HostReport;

use crate::config::{DriverKind, SchedulerConfig};
use crate::filters::Filter;

/// Picks one host among those that passed the filters.
pub trait Choose: Send + Sync + std::fmt::Debug {
    /// One of `hosts`, which is never empty.
    fn choose<'h>(&self, hosts: &[&'h HostReport]) -> &'h HostReport;
}

/// A driver: its filters, then its choice.
#[derive(Debug)]
pub struct Driver {
    /// Run in order; the retry filter always first.
    pub filters: Vec<Box<dyn Filter>>,
    /// Chooses among what passes.
    pub chooser: Box<dyn Choose>,
}

impl Driver {
    /// The driver `config` names.
    pub fn new(config: &SchedulerConfig) -> Self {
        match config.driver {
            DriverKind::Chance => chance::driver(),
            DriverKind::Zone => zone::driver(),
            DriverKind::Simple => simple::driver(config),
            DriverKind::Filter => filter::driver(config),
        }
    }
}

/// A random host.
#[derive(Debug)]
struct Random;

impl Choose for Random {
    fn choose<'h>(&self, hosts: &[&'h HostReport]) -> &'h HostReport {
        hosts[fastrand::usize(..hosts.len())]
    }
}

/// The host with the smallest `key`; ties broken at random, so schedulers
/// that see the same hosts do not all pick the same one.
fn min_by_key<'h, K: Ord>(
    hosts: &[&'h HostReport],
    key: impl Fn(&HostReport) -> K,
) -> &'h HostReport {
    let mut best = hosts[0];
    let mut best_key = key(best);
    let mut ties = 1;
    for &host in &hosts[1..] {
        let k = key(host);
        match k.cmp(&best_key) {
            std::cmp::Ordering::Less => {
                best = host;
                best_key = k;
                ties = 1;
            }
            std::cmp::Ordering::Equal => {
                // Reservoir sampling: each tied host ends up chosen with
                // equal chance, in one pass.
                ties += 1;
                if fastrand::usize(..ties) == 0 {
                    best = host;
                }
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    best
}
