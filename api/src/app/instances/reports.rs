//! What hosts and the scheduler report about instances: each report is
//! recorded unless a newer one is, and a host holding an instance it should
//! not is told so.

use stratus_rpc::RequestContext;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::wire::compute::InstanceRef;
use stratus_rpc::wire::conductor::{InstanceEvent, InstanceState, InstanceUpdate};
use tracing::{info, warn};

use crate::db::instances::{ShutdownBehavior, StateChange, StoredState};
use crate::db::{Db, DbError};

/// Records one report. Returns whether it was recorded and the instance
/// is now gone with an address (its groups' members changed).
pub async fn record_report(
    db: &Db,
    compute: &ComputeClient,
    ctx: &RequestContext,
    update: &InstanceUpdate,
) -> Result<bool, DbError> {
    let uuid = update.instance_id.to_string();
    let host = update.host.as_ref().map(ToString::to_string);
    let Some(stored) = db.instance_state(&uuid).await? else {
        warn!(instance_id = %update.instance_id, "an update for an instance the database does not have");
        return Ok(false);
    };
    if from_second_host(compute, ctx, update, &stored).await {
        return Ok(false);
    }
    let attempt = i64::from(update.attempt);
    if update.state.is_alive()
        && attempt > stored.attempt
        && let Some(h) = &host
    {
        db.set_attempt(&uuid, h, attempt).await?;
    }
    // Terminated (before any host had it, the API ends those at once) or
    // shutting down: a host that reports it alive is told to terminate it
    // (again: a terminate is idempotent, and the first may have died with
    // a restart), and the report does not revive it.
    let Ok(state) = stored
        .state
        .transition(InstanceEvent::Reported(update.state))
    else {
        if let Some(host) = &update.host {
            info!(instance_id = %update.instance_id, %host, "a live report of an instance being or already terminated; telling the host to terminate it");
            let instance = InstanceRef {
                instance_id: update.instance_id,
            };
            if let Err(e) = compute.terminate_instance(ctx, host, instance).await {
                warn!(error = %stratus_rpc::error::error_chain(&e), "could not tell the host to terminate");
            }
        }
        return Ok(false);
    };
    let change = StateChange {
        task_state: update.task_state.as_deref(),
        reason: update.reason.as_deref(),
        host: host.as_deref(),
        ..StateChange::to(state, i64::try_from(update.sequence).unwrap_or(i64::MAX))
    };
    let applied = db.update_state(&uuid, &change).await?;
    // Running, then stopped without anyone asking (a user's stop goes
    // through stopping): the guest shut itself down.
    if applied && stored.state == InstanceState::Running && state == InstanceState::Stopped {
        terminate_if_asked(db, compute, ctx, &uuid).await?;
    }
    Ok(applied && state.is_gone() && stored.fixed_ip.is_some())
}

/// A guest that shut itself down is terminated when its
/// `instanceInitiatedShutdownBehavior` says so: recorded as shutting down,
/// and its host told to terminate it (its report ends it).
async fn terminate_if_asked(
    db: &Db,
    compute: &ComputeClient,
    ctx: &RequestContext,
    uuid: &str,
) -> Result<(), DbError> {
    let Some(i) = db.instance_by_uuid(uuid).await? else {
        return Ok(());
    };
    if i.attributes.shutdown_behavior != ShutdownBehavior::Terminate {
        return Ok(());
    }
    let Some((host, instance)) = super::placed(&i) else {
        return Ok(());
    };
    info!(instance_id = %i.ec2_id, %host, "the guest shut down and its shutdown behaviour is terminate");
    if !super::record(db, &i, InstanceState::ShuttingDown, Some("deleting"), None).await? {
        return Ok(());
    }
    if let Err(e) = compute.terminate_instance(ctx, &host, instance).await {
        // Shutting down stays recorded: the host's reconcile, or a
        // TerminateInstances, finishes it.
        warn!(instance_id = %i.ec2_id, error = %stratus_rpc::error::error_chain(&e), "could not tell the host to terminate");
    }
    Ok(())
}

/// Whether the report comes from a second host building the same placement
/// of an instance another host holds (a duplicate delivery of
/// run_instance): only one may run it, so a live second copy is told to go,
/// and whatever the second host reports is about its own copy, not the
/// instance. A later placement (a reschedule) replaces the host instead.
async fn from_second_host(
    compute: &ComputeClient,
    ctx: &RequestContext,
    update: &InstanceUpdate,
    stored: &StoredState,
) -> bool {
    let attempt = i64::from(update.attempt);
    let second = match (&stored.host, &update.host) {
        (Some(holder), Some(reporter)) if holder != reporter.as_str() => reporter,
        _ => return false,
    };
    if attempt == 0 || attempt > stored.attempt {
        return false;
    }
    if !update.state.is_alive() {
        info!(instance_id = %update.instance_id, host = %second, state = %update.state, "dropping a report about a second host's copy");
        return true;
    }
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
    // Not terminate: that would release the address both copies share,
    // from under the guest that stays.
    if let Err(e) = compute.remove_copy(ctx, second, instance).await {
        warn!(error = %stratus_rpc::error::error_chain(&e), "could not tell the second host to remove its copy");
    }
    true
}
