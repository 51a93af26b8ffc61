//! What users ask of instances: terminate, stop, start, reboot and read the
//! console. The API records the transition and tells the instance's host,
//! whose report finishes it; a start is a call, since the host may have no
//! room for a type changed while the instance was stopped.

use stratus_rpc::wire::compute::{InstanceRef, RebootInstance, StartInstance};
use stratus_rpc::wire::conductor::{InstanceEvent, InstanceState};
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{RequestContext, RpcError};
use tracing::warn;

use super::{InstanceError, host_unreachable, incorrect, placed, record};
use crate::db::instances::InstanceRow;
use crate::ec2::Cloud;

/// One instance's move, as a response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChanged {
    /// Its EC2 id.
    pub instance: String,
    /// Its state now.
    pub current: InstanceState,
    /// Its state before.
    pub previous: InstanceState,
}

/// What a user asks of instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Terminate them.
    Terminate,
    /// Stop the running ones.
    Stop,
    /// Start the stopped ones.
    Start,
    /// Reboot them (all must be running).
    Reboot,
}

impl Ask {
    /// The event asking this of an instance a host holds (`placed`) or not.
    fn event(self, placed: bool) -> InstanceEvent {
        match self {
            Self::Terminate => InstanceEvent::Terminate { placed },
            Self::Stop => InstanceEvent::Stop,
            Self::Start => InstanceEvent::Start,
            Self::Reboot => InstanceEvent::Reboot,
        }
    }
}

/// Does what the user asks of each instance, refused for all unless every
/// one may take it (a terminate, unless none is protected). Each that moves is recorded, and its host told to
/// finish the move; one terminated before any host had it ends at once.
pub async fn ask(
    cloud: &Cloud,
    ctx: &RequestContext,
    instances: &[InstanceRow],
    ask: Ask,
) -> Result<Vec<StateChanged>, InstanceError> {
    // As EC2 does: one protected instance refuses the whole call.
    if ask == Ask::Terminate
        && let Some(i) = instances
            .iter()
            .find(|i| i.attributes.disable_api_termination && !i.state.is_gone())
    {
        return Err(InstanceError::Protected {
            instance: i.ec2_id.clone(),
        });
    }
    let next = instances
        .iter()
        .map(|i| {
            let event = ask.event(held(i));
            i.state.transition(event).map_err(|_| incorrect(i, event))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut changes = Vec::with_capacity(instances.len());
    for (i, next) in instances.iter().zip(next) {
        // Shutting down again tells the host again, as a retry should.
        let moved = next != i.state || next == InstanceState::ShuttingDown;
        let host = if (moved && next != InstanceState::Terminated) || ask == Ask::Reboot {
            let event = ask.event(false);
            Some(placed(i).ok_or_else(|| incorrect(i, event))?)
        } else {
            None
        };
        if moved {
            let task = match next {
                InstanceState::ShuttingDown => Some("deleting"),
                InstanceState::Stopping => Some("powering-off"),
                InstanceState::Pending => Some("powering-on"),
                _ => None,
            };
            let recorded = record(&cloud.db, i, next, task, None).await?;
            // Ended at once (no host had it): its public address was freed
            // with it, and the network host is told.
            if recorded
                && next.is_gone()
                && let Some(address) = &i.public_ip
            {
                crate::app::addresses::clear_in_background(
                    &cloud.network,
                    ctx,
                    vec![address.clone()],
                );
            }
        }
        if let Some((host, instance)) = host {
            match tell_host(cloud, ctx, &host, i, instance, ask).await {
                Ok(()) => {}
                Err(e) if no_room(&e) => return Err(stays_stopped(cloud, i).await?),
                Err(e) => return Err(host_unreachable(i)(e)),
            }
        }
        changes.push(StateChanged {
            instance: i.ec2_id.clone(),
            current: next,
            previous: i.state,
        });
    }
    Ok(changes)
}

/// Whether a host holds `i`: a pending launch waiting for a host (never
/// placed, or handed back) is held by none, even if one handed it back,
/// so terminating it ends it at once; a host that claims it later is
/// refused.
fn held(i: &InstanceRow) -> bool {
    let unplaced =
        i.state == InstanceState::Pending && i.task_state.as_deref() == Some("scheduling");
    placed(i).is_some() && !unplaced
}

/// The reason a start refused for want of room on the host is stored
/// with (it shows as the instance's `stateReason`).
pub const NO_ROOM: &str =
    "Server.InsufficientInstanceCapacity: Insufficient capacity for the instance type.";

/// Whether the host refused a start for want of room for the new type.
fn no_room(e: &RpcError) -> bool {
    matches!(e, RpcError::Remote { source, .. } if source.kind == "InsufficientInstanceCapacity")
}

/// `i`'s host has no room for its new type and did not touch it: it is
/// stopped again, as it was, and the caller hears why.
async fn stays_stopped(cloud: &Cloud, i: &InstanceRow) -> Result<InstanceError, InstanceError> {
    record(&cloud.db, i, InstanceState::Stopped, None, Some(NO_ROOM)).await?;
    Ok(InstanceError::InsufficientCapacity {
        instance: i.ec2_id.clone(),
        instance_type: i.instance_type.clone(),
    })
}

/// What `i`'s host is told to start: the instance with the type and user
/// data its row has now, so what changed while it was stopped reaches the
/// guest.
pub(super) fn start_request(i: &InstanceRow, instance: InstanceRef) -> StartInstance {
    StartInstance {
        instance_id: instance.instance_id,
        flavor: Some(super::request::flavor(i)),
        user_data: Some(i.user_data.clone()),
    }
}

/// Tells the instance's host to do what the user asked.
async fn tell_host(
    cloud: &Cloud,
    ctx: &RequestContext,
    host: &HostName,
    i: &InstanceRow,
    instance: InstanceRef,
    ask: Ask,
) -> Result<(), RpcError> {
    let compute = &cloud.compute;
    match ask {
        Ask::Terminate => compute.terminate_instance(ctx, host, instance).await,
        Ask::Stop => compute.stop_instance(ctx, host, instance).await,
        Ask::Start => {
            let request = start_request(i, instance);
            compute.start_instance(ctx, host, request).await
        }
        Ask::Reboot => {
            let request = RebootInstance {
                instance_id: instance.instance_id,
                hard: false,
            };
            compute.reboot_instance(ctx, host, request).await
        }
    }
}

/// The tail of the instance's serial console; empty when no host holds it.
pub async fn console_output(
    cloud: &Cloud,
    ctx: &RequestContext,
    i: &InstanceRow,
) -> Result<String, InstanceError> {
    match placed(i) {
        Some((host, instance)) if !i.state.is_gone() => cloud
            .compute
            .get_console_output(ctx, &host, instance)
            .await
            .map_err(|e| {
                warn!(instance_id = %i.ec2_id, error = %stratus_rpc::error::error_chain(&e), "console output failed");
                host_unreachable(i)(e)
            }),
        _ => Ok(String::new()),
    }
}
