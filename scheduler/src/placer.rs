//! Placing one instance: the hosts up, the driver's filters, its choice, and
//! the chosen host's usage grown by the instance before the next placement.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use stratus_rpc::wire::ids::HostName;
use stratus_rpc::wire::scheduler::{HostReport, HostStatus, Limits};

use crate::config::SchedulerConfig;
use crate::drivers::Driver;
use crate::error::NoValidHost;
use crate::filters::{self, Filter, RETRY};
use crate::host_state::{HostState, HostStates};
use crate::request::RequestSpec;

/// Where an instance goes, and what that host may hand out in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The chosen host.
    pub host: HostName,
    /// Its capacity times the allocation ratios, for its claim.
    pub limits: Limits,
}

/// Host state and a driver. Each placement runs under one lock, so two
/// requests placed at once both see what the other took.
#[derive(Debug)]
pub struct Placer {
    config: SchedulerConfig,
    driver: Driver,
    hosts: Mutex<HostStates>,
}

impl Placer {
    /// A placer with no hosts known yet.
    pub fn new(config: &SchedulerConfig) -> Self {
        Self {
            driver: Driver::new(config),
            hosts: Mutex::new(HostStates::new(Duration::from_secs(
                config.service_down_time_secs,
            ))),
            config: config.clone(),
        }
    }

    /// Records a host's report as of `now`.
    pub fn update_host(&self, report: HostReport, now: Instant) {
        self.lock().update(report, now);
    }

    /// Every host known, with whether it is up at `now`.
    pub fn hosts(&self, now: Instant) -> Vec<(HostReport, bool)> {
        self.statuses(now)
            .into_iter()
            .map(|s| (s.report, s.up))
            .collect()
    }

    /// Every host known, as `list_hosts` answers.
    pub fn statuses(&self, now: Instant) -> Vec<HostStatus> {
        let hosts = self.lock();
        hosts
            .all()
            .into_iter()
            .map(|s| HostStatus {
                report: s.report.clone(),
                up: hosts.is_up(s, now),
                last_report_secs: now.saturating_duration_since(s.seen).as_secs(),
            })
            .collect()
    }

    /// Chooses a host for `spec` and counts the instance against it.
    pub fn place(&self, spec: &RequestSpec<'_>, now: Instant) -> Result<Placed, NoValidHost> {
        let tried = spec.hosts_tried();
        let max = usize::try_from(self.config.max_attempts).unwrap_or(usize::MAX);
        if tried.len() >= max {
            return Err(NoValidHost::Attempts {
                attempts: tried.len(),
                instance: spec.instance.instance_id,
                last: spec
                    .instance
                    .placement
                    .failures
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "none reported".into()),
            });
        }
        let mut hosts = self.lock();
        let up: Vec<&HostReport> = hosts.up(now).map(|s| &s.report).collect();
        if up.is_empty() {
            return Err(NoValidHost::NoneUp(hosts.down_after().as_secs()));
        }
        let chosen = match &spec.forced_host {
            // An administrator's choice skips the filters, but not a host
            // that already failed this instance.
            Some(forced) => {
                let Some(&host) = up.iter().find(|h| &h.host == forced) else {
                    return Err(NoValidHost::ForcedHostDown(forced.clone()));
                };
                let retry: [Box<dyn Filter>; 1] = [Box::new(RETRY)];
                filters::run(&retry, vec![host], spec).map_err(NoValidHost::Filtered)?;
                forced.clone()
            }
            None => {
                let passed =
                    filters::run(&self.driver.filters, up, spec).map_err(NoValidHost::Filtered)?;
                self.driver.chooser.choose(&passed).host.clone()
            }
        };
        let Some(state) = hosts.get_mut(&chosen) else {
            return Err(NoValidHost::ForcedHostDown(chosen));
        };
        state.consume(&spec.instance.flavor);
        Ok(Placed {
            limits: self.limits(state),
            host: chosen,
        })
    }

    fn limits(&self, state: &HostState) -> Limits {
        let scale = |total: u64, ratio: f64| (total as f64 * ratio).floor() as u64;
        let r = &state.report;
        Limits {
            vcpus: scale(r.vcpus.into(), self.config.cpu_allocation_ratio),
            memory_mb: scale(r.memory_mb, self.config.ram_allocation_ratio),
            disk_gb: scale(r.disk_gb, self.config.disk_allocation_ratio),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostStates> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
