//! Periodic work: power-state sync (the hypervisor is authoritative, and an
//! unknown state is never acted on), start-up recovery, capacity reports and
//! sending again what the outbox holds.

use std::sync::Arc;
use std::time::Duration;

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::scheduler::HostReport;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ComputeManager;
use crate::instance_dir::{InstanceDir, InstanceRecord, domain_name};
use crate::state::PowerState;

impl ComputeManager {
    /// After a worker or host restart: running guests are kept, stopped
    /// ones reported, half-built ones cleaned up (domain, chains, address,
    /// files) to be built again from their redelivered request, half-fetched
    /// images removed.
    pub async fn recover(&self, ctx: &RequestContext) {
        self.load_host_enabled().await;
        let swept = self.parts.images.sweep_partial_fetches().await;
        if swept > 0 {
            info!(files = swept, "removed image fetches a restart cut short");
        }
        let mut built = std::collections::BTreeSet::new();
        if let Ok(mut entries) = tokio::fs::read_dir(&self.parts.instances_dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                if let Some(id) = self.recover_one(ctx, &entry.path()).await {
                    built.insert(id);
                }
            }
        }
        // The kernel's tables may hold anything (a host reboot empties them,
        // a crash may leave a removed guest's): make them what the built
        // instances need.
        if let Err(e) = self.parts.firewall.reconcile(|id| built.contains(id)).await {
            warn!(error = %error_chain(&e), "could not reconcile the firewall");
        }
    }

    /// Recovers one instance folder; its id if it holds a built instance
    /// (running, stopped or lost: its filters stay until it is terminated).
    async fn recover_one(
        &self,
        ctx: &RequestContext,
        root: &std::path::Path,
    ) -> Option<InstanceId> {
        let is_instance = root
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("instance-"));
        if !is_instance {
            return None;
        }
        let Some(record) = InstanceDir::read_record(root).await else {
            warn!(folder = %root.display(), "instance folder without a record; leaving it for an operator");
            return None;
        };
        let id = record.instance_id;
        let name = domain_name(&id);
        if !record.built && self.started_before_the_restart(root, &record, &name).await {
            info!(instance_id = %id, "adopting a guest whose build a restart cut short after it started");
        } else if !record.built {
            info!(instance_id = %id, "cleaning up a build interrupted by a restart");
            self.parts.prepare.release_leftovers(root).await;
            if let super::clean_up::CleanUp::DomainRemains(e) = self.clean_up(ctx, id).await {
                warn!(instance_id = %id, error = %error_chain(&e), "leaving the interrupted build for the next start");
                return None;
            }
            // Its request comes back (it was never acked); see interrupted.rs.
            self.interrupted.wait_for_request(id);
            return None;
        }
        self.flavors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, record.flavor.clone());
        match self.parts.driver.state(&name).await {
            Ok(Some(PowerState::Running)) => {
                self.report(ctx, id, InstanceState::Running, None, None)
                    .await;
            }
            Ok(Some(PowerState::Shutoff | PowerState::Crashed)) => {
                self.report(ctx, id, InstanceState::Stopped, None, None)
                    .await;
            }
            Ok(Some(PowerState::Paused | PowerState::NoState)) => {}
            Ok(None) => {
                let reason = "its domain is gone from the hypervisor".to_owned();
                self.report(ctx, id, InstanceState::Error, None, Some(reason))
                    .await;
            }
            Err(e) => {
                warn!(instance_id = %id, error = %error_chain(&e), "could not read the domain's state")
            }
        }
        Some(id)
    }

    /// Whether an unfinished build had already started its guest: the
    /// domain starts last, after the address, disk and filters, so a running
    /// one is finished here (its record marked built) rather than destroyed.
    async fn started_before_the_restart(
        &self,
        root: &std::path::Path,
        record: &InstanceRecord,
        name: &str,
    ) -> bool {
        if !matches!(
            self.parts.driver.state(name).await,
            Ok(Some(PowerState::Running))
        ) {
            return false;
        }
        let built = InstanceRecord {
            built: true,
            ..record.clone()
        };
        match InstanceDir::at(root).write_record(&built).await {
            Ok(()) => true,
            Err(e) => {
                warn!(instance_id = %record.instance_id, error = %e, "could not record the adopted build");
                false
            }
        }
    }

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

    /// Runs capacity reports and power sync until `cancel`, and once, after
    /// the grace, reports the interrupted builds no request claimed.
    pub async fn run_periodic(self: Arc<Self>, cancel: CancellationToken) {
        let mut report = tokio::time::interval(Duration::from_secs(
            self.parts.config.report_interval_secs.max(1),
        ));
        let mut sync = tokio::time::interval(Duration::from_secs(
            self.parts.config.sync_interval_secs.max(1),
        ));
        let unclaimed = tokio::time::sleep(Duration::from_secs(
            self.parts.config.interrupted_build_grace_secs,
        ));
        tokio::pin!(unclaimed);
        let mut unclaimed_checked = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                () = &mut unclaimed, if !unclaimed_checked => {
                    unclaimed_checked = true;
                    self.report_unclaimed_builds(&RequestContext::system()).await;
                }
                _ = report.tick() => {
                    let ctx = RequestContext::system();
                    let host = self.host_report().await;
                    if let Err(e) = self.parts.scheduler.update_host(&ctx, &host).await {
                        warn!(error = %error_chain(&e), "capacity report failed");
                    }
                    self.flush_outbox(&ctx).await;
                }
                _ = sync.tick() => self.sync_power_states(&RequestContext::system()).await,
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
