//! What users ask of instances: terminate, stop, start, reboot and read the
//! console. The API records the transition and casts to the instance's
//! host, whose report finishes it.

use stratus_rpc::RequestContext;
use stratus_rpc::wire::compute::RebootInstance;
use stratus_rpc::wire::conductor::{InstanceEvent, InstanceState};
use tracing::warn;

use super::{InstanceError, incorrect, placed, record, unreachable};
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

/// Does what the user asks of each instance; how each one's state moved.
pub async fn ask(
    cloud: &Cloud,
    ctx: &RequestContext,
    instances: &[InstanceRow],
    ask: Ask,
) -> Result<Vec<StateChanged>, InstanceError> {
    match ask {
        Ask::Terminate => terminate(cloud, ctx, instances).await,
        Ask::Stop => power(cloud, ctx, instances, InstanceEvent::Stop).await,
        Ask::Start => power(cloud, ctx, instances, InstanceEvent::Start).await,
        Ask::Reboot => power(cloud, ctx, instances, InstanceEvent::Reboot).await,
    }
}

/// Terminates each instance: shutting-down until its host reports it gone;
/// one no host holds yet is terminated at once.
async fn terminate(
    cloud: &Cloud,
    ctx: &RequestContext,
    instances: &[InstanceRow],
) -> Result<Vec<StateChanged>, InstanceError> {
    let mut changes = Vec::with_capacity(instances.len());
    for i in instances {
        let host = placed(i);
        let event = InstanceEvent::Terminate {
            placed: host.is_some(),
        };
        let next = i.state.transition(event).map_err(|_| incorrect(i, event))?;
        // Shutting down again tells the host again, as a retry should.
        if next != i.state || next == InstanceState::ShuttingDown {
            let task = (next == InstanceState::ShuttingDown).then_some("deleting");
            record(&cloud.db, i, next, task, None).await?;
        }
        if let (InstanceState::ShuttingDown, Some((host, instance))) = (next, host) {
            cloud
                .compute
                .terminate_instance(ctx, &host, instance)
                .await
                .map_err(unreachable(i))?;
        }
        changes.push(StateChanged {
            instance: i.ec2_id.clone(),
            current: next,
            previous: i.state,
        });
    }
    Ok(changes)
}

/// Stop, start or reboot: refused for all unless every instance may take
/// `event`; each that moves (or reboots) is recorded and its host told.
async fn power(
    cloud: &Cloud,
    ctx: &RequestContext,
    instances: &[InstanceRow],
    event: InstanceEvent,
) -> Result<Vec<StateChanged>, InstanceError> {
    let task = match event {
        InstanceEvent::Stop => Some("powering-off"),
        InstanceEvent::Start => Some("powering-on"),
        _ => None,
    };
    let next = instances
        .iter()
        .map(|i| i.state.transition(event).map_err(|_| incorrect(i, event)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut changes = Vec::with_capacity(instances.len());
    for (i, next) in instances.iter().zip(next) {
        if next != i.state || event == InstanceEvent::Reboot {
            let (host, instance) = placed(i).ok_or_else(|| incorrect(i, event))?;
            if next != i.state {
                record(&cloud.db, i, next, task, None).await?;
            }
            let compute = &cloud.compute;
            match event {
                InstanceEvent::Stop => compute.stop_instance(ctx, &host, instance).await,
                InstanceEvent::Start => compute.start_instance(ctx, &host, instance).await,
                _ => {
                    let request = RebootInstance {
                        instance_id: instance.instance_id,
                        hard: false,
                    };
                    compute.reboot_instance(ctx, &host, request).await
                }
            }
            .map_err(unreachable(i))?;
        }
        changes.push(StateChanged {
            instance: i.ec2_id.clone(),
            current: next,
            previous: i.state,
        });
    }
    Ok(changes)
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
                warn!(instance_id = %i.ec2_id, error = %e, "console output failed");
                unreachable(i)(e)
            }),
        _ => Ok(String::new()),
    }
}
