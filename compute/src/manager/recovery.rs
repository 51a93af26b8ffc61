//! What a restart finds, resolved at once: built guests reported as they
//! are; every interrupted build either adopted (its guest had started),
//! resumed from its saved request (claimed again first), or cleaned up and
//! reported in error (a failed build, or an older folder with no request).
//! Nothing waits for a request to come back: the in-process bus keeps none.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;
use tokio::sync::OwnedMutexGuard;
use tracing::{Instrument, info, warn};

use super::ComputeManager;
use super::clean_up::CleanUp;
use crate::instance_dir::{BuildStep, InstanceDir, InstanceRecord, domain_name};
use crate::state::PowerState;

/// How long a domain whose start a restart interrupted may stay shut off
/// before recovery starts it itself (the daemon finishing the start on its
/// own takes well under this).
const SPAWN_SETTLE: Duration = Duration::from_secs(10);

/// What recovery made of one instance folder.
enum Found {
    /// A built (or adopted) instance: its filters stay.
    Built(InstanceId),
    /// An interrupted build to resume, its lock already held.
    Resume(Box<RunInstance>, OwnedMutexGuard<()>),
    /// Nothing to keep.
    Nothing,
}

impl ComputeManager {
    /// After a worker or host restart: running guests are kept, stopped
    /// ones reported, interrupted builds adopted or resumed (in tasks of
    /// their own, each under its instance's lock, so serving starts at
    /// once and a redelivered request waits for the resumed build), failed
    /// ones cleaned up, half-fetched images removed. Runs before the worker
    /// serves its queues.
    pub async fn recover(self: &Arc<Self>, ctx: &RequestContext) {
        self.load_host_enabled().await;
        let swept = self.parts.images.sweep_partial_fetches().await;
        if swept > 0 {
            info!(files = swept, "removed image fetches a restart cut short");
        }
        let mut built = BTreeSet::new();
        let mut resumed = Vec::new();
        if let Ok(mut entries) = tokio::fs::read_dir(&self.parts.instances_dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                match self.recover_one(ctx, &entry.path()).await {
                    Found::Built(id) => {
                        built.insert(id);
                    }
                    Found::Resume(request, held) => resumed.push((request, held)),
                    Found::Nothing => {}
                }
            }
        }
        // The kernel's tables may hold anything (a host reboot empties them,
        // a crash may leave a removed guest's): make them what the built
        // instances need, before resumed builds add their own.
        if let Err(e) = self.parts.firewall.reconcile(|id| built.contains(id)).await {
            warn!(error = %error_chain(&e), "could not reconcile the firewall");
        }
        for (request, held) in resumed {
            let manager = self.clone();
            let ctx = ctx.clone();
            let span = tracing::info_span!("resume", instance_id = %request.instance_id);
            let resume = async move {
                let _held = held;
                info!("resuming a build a restart interrupted");
                manager.run_locked(&ctx, &request).await;
            };
            tokio::spawn(resume.instrument(span));
        }
    }

    /// Recovers one instance folder.
    async fn recover_one(&self, ctx: &RequestContext, root: &Path) -> Found {
        let is_instance = root
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("instance-"));
        if !is_instance {
            return Found::Nothing;
        }
        let Some(record) = InstanceDir::read_record(root).await else {
            warn!(folder = %root.display(), "instance folder without a record; leaving it for an operator");
            return Found::Nothing;
        };
        let id = record.instance_id;
        let name = domain_name(&id);
        match record.step {
            BuildStep::Failed => {
                self.finish_failed(ctx, id).await;
                return Found::Nothing;
            }
            BuildStep::Terminating | BuildStep::RemovingCopy => {
                self.finish_leaving(ctx, id, record.step).await;
                return Found::Nothing;
            }
            _ => {}
        }
        if record.step.under_way() {
            if self.started_before_the_restart(root, &record, &name).await {
                info!(instance_id = %id, "adopting a guest whose build a restart cut short after it started");
            } else {
                return self.interrupted(ctx, root, id).await;
            }
        }
        self.flavors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, record.flavor.clone());
        self.report_found(ctx, id, &name).await;
        Found::Built(id)
    }

    /// Reports a built instance as the hypervisor has it.
    pub(super) async fn report_found(&self, ctx: &RequestContext, id: InstanceId, name: &str) {
        match self.parts.driver.state(name).await {
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
    }

    /// An interrupted build whose guest had not started: cleared (its
    /// address kept) and resumed from its request, or, with no request
    /// saved (an older folder), cleaned up and reported in error.
    async fn interrupted(&self, ctx: &RequestContext, root: &Path, id: InstanceId) -> Found {
        info!(instance_id = %id, "cleaning up a build interrupted by a restart");
        let held = self.locks.lock(id).await;
        let Some(request) = InstanceDir::read_request(root).await else {
            self.parts.prepare.release_leftovers(root).await;
            let reason = "the build was interrupted by a compute worker restart and its request was not saved to resume it".to_owned();
            self.report_durably(ctx, id, InstanceState::Error, reason)
                .await;
            if let CleanUp::DomainRemains(e) = self.clean_up(ctx, id).await {
                warn!(instance_id = %id, error = %error_chain(&e), "leaving the interrupted build for the next start");
            }
            return Found::Nothing;
        };
        if !self.clear_partial(id).await {
            warn!(instance_id = %id, "leaving the interrupted build for the next start");
            return Found::Nothing;
        }
        Found::Resume(Box::new(request), held)
    }

    /// A build that failed before the restart: its report is in the outbox
    /// (unless the outbox file was lost), the rest goes now.
    async fn finish_failed(&self, ctx: &RequestContext, id: InstanceId) {
        info!(instance_id = %id, "cleaning up a failed build a restart interrupted");
        let _held = self.locks.lock(id).await;
        self.parts
            .prepare
            .release_leftovers(self.dir(&id).root())
            .await;
        if !self.outbox.holds_report(id) {
            let reason =
                "the build failed and the compute worker restarted before it was cleaned up"
                    .to_owned();
            self.report_durably(ctx, id, InstanceState::Error, reason)
                .await;
        }
        if let CleanUp::DomainRemains(e) = self.clean_up(ctx, id).await {
            warn!(instance_id = %id, error = %error_chain(&e), "leaving the failed build for the next start");
        }
    }

    /// A terminate (or a copy's removal) the restart cut short, finished.
    async fn finish_leaving(&self, ctx: &RequestContext, id: InstanceId, step: BuildStep) {
        info!(instance_id = %id, ?step, "finishing a removal a restart interrupted");
        let _held = self.locks.lock(id).await;
        self.parts
            .prepare
            .release_leftovers(self.dir(&id).root())
            .await;
        let terminate = step == BuildStep::Terminating;
        if let CleanUp::DomainRemains(e) = self.clean_up_with(ctx, id, terminate).await {
            warn!(instance_id = %id, error = %error_chain(&e), "leaving the removal for the next start");
            return;
        }
        if terminate {
            self.report_terminated(ctx, id).await;
        }
    }

    /// Whether an unfinished build had already started its guest: the
    /// domain starts last, after the address, disk and filters, so a running
    /// one is finished here (its record marked built) rather than destroyed.
    async fn started_before_the_restart(
        &self,
        root: &Path,
        record: &InstanceRecord,
        name: &str,
    ) -> bool {
        let started = if record.step == BuildStep::Spawning {
            self.finish_spawning(name).await
        } else {
            matches!(
                self.parts.driver.state(name).await,
                Ok(Some(PowerState::Running))
            )
        };
        if !started {
            return false;
        }
        let built = InstanceRecord {
            step: BuildStep::Built,
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

    /// A build killed while the hypervisor was starting its domain: the
    /// daemon goes on with the start without the worker, so the domain may
    /// still be on its way up (shut off, or paused while QEMU starts). Its
    /// start is awaited, or, when it stays shut off (the kill came between
    /// defining and starting it), made here: everything it needs is in place
    /// from the earlier steps, and building it again would start a second
    /// guest for the instance. Whether it runs.
    async fn finish_spawning(&self, name: &str) -> bool {
        let settle = Instant::now() + SPAWN_SETTLE;
        loop {
            match self.parts.driver.state(name).await {
                Ok(Some(PowerState::Running)) => return true,
                Ok(None) | Err(_) => return false,
                Ok(Some(PowerState::Shutoff)) if Instant::now() >= settle => break,
                Ok(Some(_)) if Instant::now() >= settle + self.spawn_timeout() => return false,
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        info!(
            domain = name,
            "starting a domain whose build a restart cut short between defining and starting it"
        );
        if let Err(e) = self.parts.driver.power_on(name).await {
            warn!(domain = name, error = %error_chain(&e), "could not start the domain");
        }
        self.wait_for(name, PowerState::Running).await.is_ok()
    }
}
