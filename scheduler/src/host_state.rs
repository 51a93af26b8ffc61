//! What the scheduler knows of each compute host: its last report and when it
//! came. Rebuilt from reports after a restart; nothing is stored.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use stratus_rpc::wire::ids::HostName;
use stratus_rpc::wire::scheduler::HostReport;

/// Host reports by host.
#[derive(Debug)]
pub struct HostStates {
    down_after: Duration,
    hosts: Mutex<HashMap<HostName, (HostReport, Instant)>>,
}

impl HostStates {
    /// Hosts unreported for `down_after` count as down.
    pub fn new(down_after: Duration) -> Self {
        Self {
            down_after,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Records a report as of `now`.
    pub fn update(&self, report: HostReport, now: Instant) {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(report.host.clone(), (report, now));
    }

    /// The hosts reported within `down_after` of `now`.
    pub fn up_hosts(&self, now: Instant) -> Vec<HostReport> {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut up: Vec<HostReport> = hosts
            .values()
            .filter(|(_, seen)| now.saturating_duration_since(*seen) < self.down_after)
            .map(|(report, _)| report.clone())
            .collect();
        up.sort_by(|a, b| a.host.cmp(&b.host));
        up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str) -> HostReport {
        HostReport {
            host: host.parse().expect("host"),
            availability_zone: "nova".into(),
            vcpus: 2,
            vcpus_used: 0,
            memory_mb: 2048,
            memory_mb_used: 0,
            disk_gb: 20,
            disk_gb_used: 0,
            running_instances: 0,
            hypervisor_type: "fake".into(),
        }
    }

    #[test]
    fn a_host_is_down_once_its_reports_stop_for_service_down_time() {
        let states = HostStates::new(Duration::from_secs(60));
        let t0 = Instant::now();
        states.update(report("a"), t0);
        states.update(report("b"), t0 + Duration::from_secs(30));
        let names = |now| -> Vec<String> {
            states
                .up_hosts(now)
                .into_iter()
                .map(|r| r.host.to_string())
                .collect()
        };
        assert_eq!(names(t0 + Duration::from_secs(59)), ["a", "b"]);
        assert_eq!(names(t0 + Duration::from_secs(60)), ["b"]);
        assert_eq!(names(t0 + Duration::from_secs(90)), Vec::<String>::new());
    }
}
