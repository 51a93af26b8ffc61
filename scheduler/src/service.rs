//! RPC dispatch for the `scheduler` topic: host reports in, placements out
//! as casts to `compute.<host>`, and instances no host can take reported to
//! the conductor as errors with the reason.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::scheduler::methods;
use stratus_rpc::clients::{ComputeClient, ConductorClient};
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::{InstanceState, InstanceUpdate, next_sequence};
use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::scheduler::{HostReport, ScheduleRunInstances};
use stratus_rpc::{Handler, HandlerError, RequestContext, RpcClient};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::SchedulerConfig;
use crate::placed::Placed;
use crate::placer::Placer;
use crate::request::RequestSpec;

/// Serves the scheduler's methods.
#[derive(Debug)]
pub struct SchedulerService {
    placer: Placer,
    placed: Placed,
    compute: ComputeClient,
    conductor: ConductorClient,
}

impl SchedulerService {
    /// A scheduler with no hosts known yet, casting over `rpc`.
    pub fn new(config: &SchedulerConfig, rpc: RpcClient) -> Self {
        Self {
            placer: Placer::new(config),
            placed: Placed::default(),
            compute: ComputeClient::new(rpc.clone()),
            conductor: ConductorClient::new(rpc),
        }
    }

    /// The placement state.
    pub fn placer(&self) -> &Placer {
        &self.placer
    }

    /// Places each instance in turn and casts it to its host; an instance no
    /// host can take goes to error with the reason. False when a cast to a
    /// host failed: whether the host got it is unknown (the broker may have
    /// taken it and lost only the confirm), so the instance is not failed
    /// here, where an error stamped now could outrank the host's report of
    /// it running; the request is redelivered instead, and goes to the same
    /// hosts (see `placed`), where building it again changes nothing.
    pub async fn run_instance(&self, ctx: &RequestContext, request: ScheduleRunInstances) -> bool {
        let mut placed: Vec<(HostName, RunInstance)> = Vec::with_capacity(request.instances.len());
        for mut instance in request.instances {
            let id = instance.instance_id;
            let entered =
                info_span!("schedule", instance_id = %id, request_id = %ctx.request_id).entered();
            let attempt = instance.placement.hosts_tried.len();
            if let Some((host, limits)) = self.placed.get(id, attempt) {
                info!(%host, "placed before (a redelivery): sending it to the same host");
                instance.placement.hosts_tried.push(host.clone());
                instance.placement.limits = limits;
                placed.push((host, instance));
                continue;
            }
            let decision = RequestSpec::new(&instance, ctx.is_admin)
                .and_then(|spec| self.placer.place(&spec, Instant::now()));
            match decision {
                Ok(choice) => {
                    debug!(host = %choice.host, attempt = instance.placement.hosts_tried.len() + 1, "placed");
                    instance.placement.hosts_tried.push(choice.host.clone());
                    instance.placement.limits = Some(choice.limits);
                    self.placed
                        .insert(id, attempt, choice.host.clone(), Some(choice.limits));
                    placed.push((choice.host, instance));
                }
                Err(e) => {
                    drop(entered);
                    warn!(instance_id = %id, reason = %e, "no host for the instance");
                    self.fail(ctx, id, e.to_string()).await;
                }
            }
        }
        let casts = placed.iter().map(|(host, instance)| {
            let span = info_span!("cast", instance_id = %instance.instance_id, %host);
            async move {
                let handed = self.compute.run_instance(ctx, host, instance).await;
                if let Err(e) = &handed {
                    warn!(error = %e, "could not hand the instance to its host; it will come again");
                }
                handed.is_ok()
            }
            .instrument(span)
        });
        let handed = futures::future::join_all(casts).await;
        if !placed.is_empty() {
            info!(request_id = %ctx.request_id, instances = placed.len(), "scheduled");
        }
        handed.into_iter().all(|ok| ok)
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
            warn!(%instance_id, error = %e, "could not report the scheduling failure");
        }
    }
}

#[async_trait]
impl Handler for SchedulerService {
    async fn handle(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::UPDATE_HOST => {
                let report: HostReport = decode_args(method, args)?;
                debug!(host = %report.host, "host report");
                self.placer.update_host(report, Instant::now());
                Ok(null())
            }
            methods::RUN_INSTANCE => {
                let request: ScheduleRunInstances = decode_args(method, args)?;
                if self.run_instance(ctx, request).await {
                    Ok(null())
                } else {
                    Err(HandlerError::Retryable(stratus_rpc::RemoteError::new(
                        "HostUnreachable",
                        "a placed instance could not be handed to its host",
                    )))
                }
            }
            methods::LIST_HOSTS => encode_result(&self.placer.statuses(Instant::now())),
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
