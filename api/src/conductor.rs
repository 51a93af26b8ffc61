//! The conductor: records what compute hosts and the scheduler report about
//! instances in the database, newest report first, and keeps the hosts'
//! view of security group members current.

use stratus_rpc::RequestContext;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::wire::compute::InstanceRef;
use stratus_rpc::wire::conductor::{GuestMetadata, InstanceState, InstanceUpdate};
use tracing::{info, warn};

use crate::app::security_groups::group_update;
use crate::db::{Db, DbError};

/// Records instance state changes and where instances run.
#[derive(Debug, Clone)]
pub struct Conductor {
    db: Db,
    compute: ComputeClient,
}

/// The stored name of a wire state.
pub fn state_name(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Pending => "pending",
        InstanceState::Running => "running",
        InstanceState::ShuttingDown => "shutting-down",
        InstanceState::Terminated => "terminated",
        InstanceState::Stopping => "stopping",
        InstanceState::Stopped => "stopped",
        InstanceState::Error => "error",
    }
}

impl Conductor {
    /// A conductor writing to `db`, reaching hosts through `compute`.
    pub fn new(db: Db, compute: ComputeClient) -> Self {
        Self { db, compute }
    }

    /// Records one state change unless a newer one is already stored. A
    /// host still building an instance the user terminated is told to
    /// terminate it.
    pub async fn instance_update(
        &self,
        ctx: &RequestContext,
        update: &InstanceUpdate,
    ) -> Result<(), DbError> {
        let uuid = update.instance_id.to_string();
        let host = update.host.as_ref().map(ToString::to_string);
        info!(
            request_id = %ctx.request_id,
            instance_id = %update.instance_id,
            host = host.as_deref().unwrap_or(""),
            state = ?update.state,
            task_state = update.task_state.as_deref().unwrap_or(""),
            reason = update.reason.as_deref().unwrap_or(""),
            "instance state changed"
        );
        let Some(stored) = self.db.instance_state(&uuid).await? else {
            warn!(instance_id = %update.instance_id, "an update for an instance the database does not have");
            return Ok(());
        };
        let gone = matches!(
            update.state,
            InstanceState::Terminated | InstanceState::Error
        );
        let alive = matches!(
            update.state,
            InstanceState::Pending
                | InstanceState::Running
                | InstanceState::Stopping
                | InstanceState::Stopped
        );
        // Terminated before any host had it (the API ends those at once):
        // a host that reports it alive afterwards is told to terminate it,
        // and the report does not revive it. Reports while shutting down
        // are ordinary: that host was already told.
        let (stored_state, fixed_ip) = (stored.state.as_str(), stored.fixed_ip.clone());
        // A second host building the same placement of an instance another
        // host holds is a duplicate delivery of run_instance: only one may
        // run it. A later placement (a reschedule) replaces the host.
        // Whatever such a second host reports afterwards (shutting down,
        // terminated as told) is about its own copy, not the instance.
        let attempt = i64::from(update.attempt);
        let from_second = attempt > 0
            && attempt <= stored.attempt
            && matches!((&stored.host, &host), (Some(a), Some(b)) if a != b);
        if from_second && !alive {
            info!(
                instance_id = %update.instance_id,
                host = host.as_deref().unwrap_or(""),
                state = ?update.state,
                "dropping a report about a second host's copy"
            );
            return Ok(());
        }
        if from_second && let Some(second) = &update.host {
            warn!(
                instance_id = %update.instance_id,
                holder = stored.host.as_deref().unwrap_or(""),
                %second,
                attempt,
                "a second host is building the same placement; telling it to stop"
            );
            let instance = InstanceRef {
                instance_id: update.instance_id,
            };
            // Not terminate: that would release the address both copies
            // share, from under the guest that stays.
            if let Err(e) = self.compute.remove_copy(ctx, second, instance).await {
                warn!(error = %e, "could not tell the second host to remove its copy");
            }
            return Ok(());
        }
        if alive
            && attempt > stored.attempt
            && let Some(h) = &host
        {
            self.db.set_attempt(&uuid, h, attempt).await?;
        }
        if stored_state == "terminated" && alive {
            if let Some(host) = &update.host {
                info!(instance_id = %update.instance_id, %host, "terminated before its host had it; telling the host");
                let instance = InstanceRef {
                    instance_id: update.instance_id,
                };
                if let Err(e) = self.compute.terminate_instance(ctx, host, instance).await {
                    warn!(error = %e, "could not tell the host to terminate");
                }
            }
            return Ok(());
        }
        let applied = self
            .db
            .update_state(
                &uuid,
                state_name(update.state),
                update.task_state.as_deref(),
                update.reason.as_deref(),
                host.as_deref(),
                sequence(update),
            )
            .await?;
        if applied
            && gone
            && fixed_ip.is_some()
            && let Some(stored) = self.db.instance_by_uuid(&uuid).await?
        {
            self.refresh_members(ctx, &stored.groups).await?;
        }
        Ok(())
    }

    /// Records an instance's address and zone; its groups' members changed.
    pub async fn instance_metadata(
        &self,
        ctx: &RequestContext,
        metadata: &GuestMetadata,
    ) -> Result<(), DbError> {
        let uuid = metadata.instance_id.to_string();
        self.db
            .set_placement(
                &uuid,
                &metadata.fixed_ip.to_string(),
                &metadata.availability_zone,
            )
            .await?;
        if let Some(stored) = self.db.instance_by_uuid(&uuid).await? {
            self.refresh_members(ctx, &stored.groups).await?;
        }
        Ok(())
    }

    /// Tells the hosts the members of `groups` changed, for the groups some
    /// rule names as a source (only those rules use members).
    async fn refresh_members(
        &self,
        ctx: &RequestContext,
        groups: &[(String, String)],
    ) -> Result<(), DbError> {
        let ids: Vec<String> = groups.iter().map(|(id, _)| id.clone()).collect();
        for group in self.db.referenced_groups(&ids).await? {
            match group_update(&self.db, &group).await {
                Ok(update) => {
                    if let Err(e) = self.compute.refresh_security_group(ctx, &update).await {
                        warn!(group = %group.group_id, error = %e, "could not fan out a membership change");
                    }
                }
                Err(e) => warn!(group = %group.group_id, error = %e, "group update"),
            }
        }
        Ok(())
    }
}

fn sequence(update: &InstanceUpdate) -> i64 {
    i64::try_from(update.sequence).unwrap_or(i64::MAX)
}
