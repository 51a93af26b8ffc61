//! What the scheduler does with a request: place each instance, cast it to
//! `compute.<host>`, and report instances no host can take to the conductor
//! as errors with the reason.

use std::error::Error;
use std::time::{Duration, Instant};

use stratus_rpc::clients::{ComputeClient, ConductorClient};
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::{InstanceState, InstanceUpdate, next_sequence};
use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::scheduler::{HostReport, HostStatus, ScheduleRunInstances};
use stratus_rpc::{RequestContext, RpcClient};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::SchedulerConfig;
use crate::error::NoValidHost;
use crate::placed::Placed;
use crate::placer::{Placed as Choice, Placer};
use crate::request::RequestSpec;

/// Places instances and hands them to their hosts.
#[derive(Debug)]
pub struct SchedulerManager {
    placer: Placer,
    placed: Placed,
    compute: ComputeClient,
    conductor: ConductorClient,
    /// When this scheduler started: until it has run for the hosts' down
    /// time it has not heard every live host yet.
    started: Instant,
    /// `service_down_time_secs`.
    down_time: Duration,
}

/// Some placed instance could not be handed to its host; the request is
/// worth running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a placed instance could not be handed to its host")]
pub struct HostUnreachable;

impl SchedulerManager {
    /// A scheduler with no hosts known yet, casting over `rpc`.
    pub fn new(config: &SchedulerConfig, rpc: RpcClient) -> Self {
        Self {
            placer: Placer::new(config),
            placed: Placed::default(),
            compute: ComputeClient::new(rpc.clone()),
            conductor: ConductorClient::new(rpc),
            started: Instant::now(),
            down_time: Duration::from_secs(config.service_down_time_secs),
        }
    }

    /// The placement state.
    pub fn placer(&self) -> &Placer {
        &self.placer
    }

    /// Records a host's report.
    pub fn update_host(&self, report: HostReport) {
        debug!(host = %report.host, "host report");
        self.placer.update_host(report, Instant::now());
    }

    /// Every host known, by name.
    pub fn list_hosts(&self) -> Vec<HostStatus> {
        self.placer.statuses(Instant::now())
    }

    /// Places each instance in turn and casts it to its host; an instance no
    /// host can take goes to error with the reason. Fails when a cast to a
    /// host failed: whether the host got it is unknown (the broker may have
    /// taken it and lost only the confirm), so the instance is not failed
    /// here, where an error stamped now could outrank the host's report of
    /// it running; the request is redelivered instead, and goes to the same
    /// hosts (see `placed`), where building it again changes nothing.
    pub async fn run_instance(
        &self,
        ctx: &RequestContext,
        request: ScheduleRunInstances,
    ) -> Result<(), HostUnreachable> {
        let mut placed: Vec<(HostName, RunInstance)> = Vec::with_capacity(request.instances.len());
        for instance in request.instances {
            if let Some(choice) = self.place(ctx, instance).await {
                placed.push(choice);
            }
        }
        let casts = placed.iter().map(|(host, instance)| {
            let span = info_span!("cast", instance_id = %instance.instance_id, %host);
            async move {
                let handed = self.compute.run_instance(ctx, host, instance).await;
                if let Err(e) = &handed {
                    warn!(
                        error = e as &dyn Error,
                        "could not hand the instance to its host; it will come again"
                    );
                }
                handed.is_ok()
            }
            .instrument(span)
        });
        let handed = futures::future::join_all(casts).await;
        if !placed.is_empty() {
            info!(request_id = %ctx.request_id, instances = placed.len(), "scheduled");
        }
        if handed.into_iter().all(|ok| ok) {
            Ok(())
        } else {
            Err(HostUnreachable)
        }
    }

    /// The host of one instance (the one it had if this is a redelivery), or
    /// none when no host can take it and it was reported failed.
    async fn place(
        &self,
        ctx: &RequestContext,
        mut instance: RunInstance,
    ) -> Option<(HostName, RunInstance)> {
        let id = instance.instance_id;
        let entered =
            info_span!("schedule", instance_id = %id, request_id = %ctx.request_id).entered();
        let attempt = instance.placement.hosts_tried.len();
        if let Some((host, limits)) = self.placed.get(id, attempt) {
            info!(%host, "placed before (a redelivery): sending it to the same host");
            instance.placement.hosts_tried.push(host.clone());
            instance.placement.limits = limits;
            return Some((host, instance));
        }
        drop(entered);
        let decision = self.decide(&instance, ctx.is_admin).await;
        let entered =
            info_span!("schedule", instance_id = %id, request_id = %ctx.request_id).entered();
        match decision {
            Ok(choice) => {
                debug!(host = %choice.host, attempt = attempt + 1, "placed");
                instance.placement.hosts_tried.push(choice.host.clone());
                instance.placement.limits = Some(choice.limits);
                self.placed
                    .insert(id, attempt, choice.host.clone(), Some(choice.limits));
                Some((choice.host, instance))
            }
            Err(e) => {
                drop(entered);
                warn!(instance_id = %id, reason = %e, "no host for the instance");
                self.fail(ctx, id, e.to_string()).await;
                None
            }
        }
    }

    /// The placement of one instance. A scheduler that has not yet run for
    /// the hosts' down time cannot tell "no host is up" from "no host has
    /// reported to me yet" (it just restarted; hosts report every few
    /// seconds), so it waits for a first host until then rather than fail
    /// launches for its own restart.
    async fn decide(&self, instance: &RunInstance, is_admin: bool) -> Result<Choice, NoValidHost> {
        loop {
            let decision = RequestSpec::new(instance, is_admin)
                .and_then(|spec| self.placer.place(&spec, Instant::now()));
            match decision {
                Err(NoValidHost::NoneUp(_)) if self.started.elapsed() < self.down_time => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    async fn fail(&self, ctx: &RequestContext, instance_id: InstanceId, reason: String) {
        let update = InstanceUpdate {
            instance_id,
            host: None,
            state: InstanceState::Error,
            task_state: None,
            reason: Some(reason),
            sequence: next_sequence(),
            attempt: 0,
        };
        if let Err(e) = self.conductor.instance_update(ctx, &update).await {
            warn!(%instance_id, error = &e as &dyn Error, "could not report the scheduling failure");
        }
    }
}

#[cfg(test)]
mod tests;
