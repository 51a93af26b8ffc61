//! The rest of an instance's life: terminate, reboot, stop, start, console.

use std::io::SeekFrom;

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::StartInstance;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::instrument;

use super::ComputeManager;
use super::clean_up::CleanUp;
use super::resize::StartError;
use crate::driver::DriverError;
use crate::instance_dir::{BuildStep, domain_name};
use crate::state::PowerState;

impl ComputeManager {
    /// Destroys the instance and everything it holds. Idempotent; works on
    /// an instance whose build half failed.
    #[instrument(skip_all, fields(instance_id = %id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn terminate_instance(&self, ctx: &RequestContext, id: InstanceId) {
        let _held = self.locks.lock(id).await;
        self.awaiting_claim
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        let before = self
            .last_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .copied();
        self.report(ctx, id, InstanceState::ShuttingDown, None, None)
            .await;
        let record = self.mark_leaving(id, BuildStep::Terminating).await;
        if let CleanUp::DomainRemains(e) = self.clean_up(ctx, id).await {
            // The guest may still run: say so, and keep it terminable.
            self.unmark_leaving(record).await;
            let reason = format!("terminate failed, try again: {}", error_chain(&e));
            let state = before.unwrap_or(InstanceState::Running);
            self.report(ctx, id, state, None, Some(reason)).await;
            return;
        }
        self.report_terminated(ctx, id).await;
    }

    /// Reports the instance terminated; the report stays in the outbox
    /// until the conductor is seen to know it.
    pub(super) async fn report_terminated(&self, ctx: &RequestContext, id: InstanceId) {
        let update = self.update(id, InstanceState::Terminated, None, None);
        self.outbox.until_confirmed(update.clone());
        self.send(ctx, update).await;
    }

    /// Removes a duplicate of an instance that another host runs (a request
    /// delivered twice reached two hosts): its domain, chains and files go,
    /// its address stays, since an instance holds one and the other copy
    /// uses it. Nothing is reported: the instance is not this host's.
    #[instrument(skip_all, fields(instance_id = %id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn remove_copy(&self, ctx: &RequestContext, id: InstanceId) {
        let _held = self.locks.lock(id).await;
        let record = self.mark_leaving(id, BuildStep::RemovingCopy).await;
        if let CleanUp::DomainRemains(e) = self.clean_up_with(ctx, id, false).await {
            self.unmark_leaving(record).await;
            tracing::warn!(error = %error_chain(&e), "could not remove the duplicate copy");
            return;
        }
        self.forget(id);
        tracing::info!("removed a duplicate copy; its address stays with the other host's");
    }

    /// Reboots: `hard` resets the machine, soft asks the guest.
    #[instrument(skip_all, fields(instance_id = %id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn reboot_instance(
        &self,
        ctx: &RequestContext,
        id: InstanceId,
        hard: bool,
    ) -> Result<(), DriverError> {
        let _held = self.locks.lock(id).await;
        self.parts.driver.reboot(&domain_name(&id), hard).await?;
        self.report(ctx, id, InstanceState::Running, None, None)
            .await;
        Ok(())
    }

    /// Stops the guest, keeping its disk and address.
    #[instrument(skip_all, fields(instance_id = %id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn stop_instance(
        &self,
        ctx: &RequestContext,
        id: InstanceId,
    ) -> Result<(), DriverError> {
        let _held = self.locks.lock(id).await;
        self.report(ctx, id, InstanceState::Stopping, None, None)
            .await;
        self.power_to(id, PowerState::Shutoff).await?;
        self.report(ctx, id, InstanceState::Stopped, None, None)
            .await;
        Ok(())
    }

    /// Starts a stopped guest, first resized to the type it has now when
    /// `request` names another than it was built with, and its config drive
    /// built again when `request` has other user data. Refused with
    /// [`StartError::InsufficientCapacity`] when this host has no room for
    /// the new type: the guest stays stopped, as it was.
    #[instrument(skip_all, fields(instance_id = %request.instance_id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn start_instance(
        &self,
        ctx: &RequestContext,
        request: &StartInstance,
    ) -> Result<(), StartError> {
        let id = request.instance_id;
        let _held = self.locks.lock(id).await;
        // A guest running already (a start sent again) has had its
        // changes: they are made before it powers on.
        let state = self.parts.driver.state(&domain_name(&id)).await?;
        let stopped = matches!(state, Some(PowerState::Shutoff | PowerState::Crashed));
        let resized = match &request.flavor {
            Some(flavor) if stopped => self.resize_for_start(id, flavor).await,
            _ => Ok(false),
        };
        let resized = match resized {
            Err(e @ StartError::InsufficientCapacity { .. }) => {
                // The caller hears it too; this covers a reply that is lost.
                let reason = error_chain(&e);
                self.report(ctx, id, InstanceState::Stopped, None, Some(reason))
                    .await;
                return Err(e);
            }
            other => other?,
        };
        if let Some(user_data) = request.user_data.as_ref().filter(|_| stopped) {
            self.refresh_user_data(ctx, id, user_data.as_deref())
                .await?;
        }
        self.power_to(id, PowerState::Running).await?;
        self.report(ctx, id, InstanceState::Running, None, None)
            .await;
        if resized {
            // The schedulers count this host's use from its reports: the
            // new size is told now, not at the next periodic report.
            let report = self.host_report().await;
            if let Err(e) = self.parts.scheduler.update_host(ctx, &report).await {
                tracing::warn!(error = %error_chain(&e), "could not report the new size; the periodic report will");
            }
        }
        Ok(())
    }

    /// Powers the guest on (and waits until it runs) or off, unless it is
    /// in `wanted` already.
    async fn power_to(&self, id: InstanceId, wanted: PowerState) -> Result<(), DriverError> {
        let name = domain_name(&id);
        if self.parts.driver.state(&name).await? == Some(wanted) {
            return Ok(());
        }
        if wanted == PowerState::Running {
            self.parts.driver.power_on(&name).await?;
            self.wait_for(&name, wanted).await
        } else {
            self.parts.driver.power_off(&name).await
        }
    }

    /// The last `console_max_bytes` of the console log (empty if the guest
    /// wrote nothing yet); `NotFound` when the instance is not on this host.
    pub async fn console_output(&self, id: InstanceId) -> std::io::Result<String> {
        let dir = self.dir(&id);
        if !tokio::fs::try_exists(dir.root()).await? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("instance {id} is not on this host"),
            ));
        }
        let path = dir.console_log();
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        let cap = self.parts.config.console_max_bytes;
        file.seek(SeekFrom::Start(len.saturating_sub(cap))).await?;
        let mut bytes = Vec::new();
        file.take(cap).read_to_end(&mut bytes).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
