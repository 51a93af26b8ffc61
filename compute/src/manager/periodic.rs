//! Periodic work: power-state sync (the hypervisor is authoritative, and an
//! unknown state is never acted on), capacity reports, sending again what
//! the outbox holds, and the reconcile with the conductor.

use std::sync::Arc;
use std::time::Duration;

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::scheduler::HostReport;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ComputeManager;
use crate::instance_dir::domain_name;
use crate::state::PowerState;

impl ComputeManager {
    /// Compares the hypervisor's view with what was last reported and
    /// reports the differences. Never starts or stops a guest.
    pub async fn sync_power_states(&self, ctx: &RequestContext) {
        let known: Vec<_> = self
            .last_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, state)| (*id, *state))
            .collect();
        for (id, last) in known {
            if !matches!(last, InstanceState::Running | InstanceState::Stopped) {
                continue;
            }
            let now = match self.parts.driver.state(&domain_name(&id)).await {
                Ok(state) => state,
                Err(e) => {
                    warn!(instance_id = %id, error = %error_chain(&e), "power sync could not read the domain");
                    continue;
                }
            };
            let seen = match now {
                Some(PowerState::Running) => InstanceState::Running,
                Some(PowerState::Shutoff | PowerState::Crashed) => InstanceState::Stopped,
                // Transient or paused: wait for a clear answer.
                Some(PowerState::NoState | PowerState::Paused) | None => continue,
            };
            if seen != last {
                info!(instance_id = %id, ?last, ?seen, "power state changed outside stratus");
                self.report(ctx, id, seen, None, None).await;
            }
        }
    }

    /// This host's capacity and usage.
    pub async fn host_report(&self) -> HostReport {
        let (vcpus_used, memory_mb_used, disk_gb_used, running) = {
            let flavors = self
                .flavors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flavors
                .values()
                .fold((0u32, 0u64, 0u64, 0u32), |(c, m, d, n), f| {
                    (c + f.vcpus, m + f.memory_mb, d + f.root_gb, n + 1)
                })
        };
        let config = &self.parts.config;
        let switch = self.host_enabled();
        let vcpus = config.vcpus.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        });
        let memory_mb = match config.memory_mb {
            Some(mb) => mb,
            None => host_memory_mb().await,
        };
        let disk_gb = match config.disk_gb {
            Some(gb) => gb,
            None => host_disk_gb(&self.parts.instances_dir),
        };
        HostReport {
            host: self.parts.host.clone(),
            availability_zone: self.parts.availability_zone.clone(),
            vcpus,
            vcpus_used,
            memory_mb,
            memory_mb_used,
            disk_gb,
            disk_gb_used,
            running_instances: running,
            hypervisor_type: self.parts.driver.hypervisor_type(),
            architecture: std::env::consts::ARCH.to_owned(),
            enabled: switch.enabled,
            disabled_reason: switch.reason,
        }
    }

    /// Runs capacity reports (and outbox flushes), power sync and the
    /// reconcile with the conductor until `cancel`; the first of each at
    /// once, right after recovery.
    pub async fn run_periodic(self: Arc<Self>, cancel: CancellationToken) {
        let config = &self.parts.config;
        let every = |secs: u64| tokio::time::interval(Duration::from_secs(secs.max(1)));
        let mut report = every(config.report_interval_secs);
        let mut sync = every(config.sync_interval_secs);
        let mut reconcile = every(config.reconcile_interval_secs);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = report.tick() => {
                    let ctx = RequestContext::system();
                    let host = self.host_report().await;
                    if let Err(e) = self.parts.scheduler.update_host(&ctx, &host).await {
                        warn!(error = %error_chain(&e), "capacity report failed");
                    }
                    self.flush_outbox(&ctx).await;
                }
                _ = sync.tick() => self.sync_power_states(&RequestContext::system()).await,
                _ = reconcile.tick() => self.reconcile(&RequestContext::system()).await,
            }
        }
    }
}

async fn host_memory_mb() -> u64 {
    let meminfo = tokio::fs::read_to_string("/proc/meminfo")
        .await
        .unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// The size of the file system holding `dir`, in GiB (0 when unreadable).
fn host_disk_gb(dir: &std::path::Path) -> u64 {
    // The folder may not exist before the first build: ask about the
    // nearest one that does (the same file system).
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    nix::sys::statvfs::statvfs(existing).map_or(0, |fs| {
        fs.blocks().saturating_mul(fs.fragment_size()) / (1 << 30)
    })
}

#[cfg(test)]
mod tests {
    use super::host_disk_gb;

    #[test]
    fn the_disk_size_is_what_df_reports() {
        let out = std::process::Command::new("df")
            .args(["-Pk", "/"])
            .output()
            .expect("df runs");
        let df_gb = String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .expect("df's size column")
            / (1024 * 1024);
        assert!(df_gb > 0);
        assert_eq!(
            host_disk_gb(std::path::Path::new("/no/such/dir/under/root")),
            df_gb
        );
    }
}
