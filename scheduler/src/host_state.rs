//! What the scheduler knows of each compute host: its last report, when it
//! came, and what was placed on it since. Rebuilt from reports after a
//! restart; nothing is stored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stratus_rpc::wire::compute::Flavor;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::wire::scheduler::HostReport;

/// One host as last reported, with what was placed on it since.
#[derive(Debug, Clone)]
pub struct HostState {
    /// The report, its usage grown by each placement since it came.
    pub report: HostReport,
    /// When the report came.
    pub seen: Instant,
}

impl HostState {
    /// Counts an instance of `flavor` against the host until its next report
    /// (which includes the build, since the host claims it when it starts).
    pub fn consume(&mut self, flavor: &Flavor) {
        let r = &mut self.report;
        r.vcpus_used = r.vcpus_used.saturating_add(flavor.vcpus);
        r.memory_mb_used = r.memory_mb_used.saturating_add(flavor.memory_mb);
        r.disk_gb_used = r.disk_gb_used.saturating_add(flavor.root_gb);
        r.running_instances = r.running_instances.saturating_add(1);
    }
}

/// Host states by host.
#[derive(Debug)]
pub struct HostStates {
    down_after: Duration,
    hosts: HashMap<HostName, HostState>,
}

impl HostStates {
    /// Hosts unreported for `down_after` count as down.
    pub fn new(down_after: Duration) -> Self {
        Self {
            down_after,
            hosts: HashMap::new(),
        }
    }

    /// How long a host may stay silent and still count as up.
    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// Records a report as of `now`; it replaces what was placed since the last.
    pub fn update(&mut self, report: HostReport, now: Instant) {
        self.hosts
            .insert(report.host.clone(), HostState { report, seen: now });
    }

    /// Whether `state` reported within `down_after` of `now`.
    pub fn is_up(&self, state: &HostState, now: Instant) -> bool {
        now.saturating_duration_since(state.seen) < self.down_after
    }

    /// The hosts up at `now`, in no particular order.
    pub fn up(&self, now: Instant) -> impl Iterator<Item = &HostState> {
        self.hosts.values().filter(move |s| self.is_up(s, now))
    }

    /// Every host ever reported, up or not, by name.
    pub fn all(&self) -> Vec<&HostState> {
        let mut all: Vec<&HostState> = self.hosts.values().collect();
        all.sort_by(|a, b| a.report.host.cmp(&b.report.host));
        all
    }

    /// One host, to consume from.
    pub fn get_mut(&mut self, host: &HostName) -> Option<&mut HostState> {
        self.hosts.get_mut(host)
    }

    /// One host.
    pub fn get(&self, host: &HostName) -> Option<&HostState> {
        self.hosts.get(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_test_support::fixtures::host_report as report;

    #[test]
    fn a_host_is_down_once_its_reports_stop_for_service_down_time() {
        let mut states = HostStates::new(Duration::from_secs(60));
        let t0 = Instant::now();
        states.update(report("a", "nova", 2, 2048), t0);
        states.update(report("b", "nova", 2, 2048), t0 + Duration::from_secs(30));
        let names = |now| -> Vec<String> {
            let mut up: Vec<String> = states.up(now).map(|s| s.report.host.to_string()).collect();
            up.sort();
            up
        };
        assert_eq!(names(t0 + Duration::from_secs(59)), ["a", "b"]);
        assert_eq!(names(t0 + Duration::from_secs(60)), ["b"]);
        assert_eq!(names(t0 + Duration::from_secs(90)), Vec::<String>::new());
    }
}
