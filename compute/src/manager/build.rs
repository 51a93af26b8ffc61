//! `run_instance`: from a request to a running guest, or to an error with a
//! reason and nothing left behind.

use std::time::Duration;

use stratus_host::CommandError;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InvalidId;
use stratus_rpc::wire::scheduler::ScheduleRunInstances;
use stratus_rpc::{RequestContext, RpcError};
use tracing::{info, instrument, warn};

use super::clean_up::CleanUp;
use super::{ComputeManager, PrepareError};
use crate::driver::DriverError;
use crate::image_cache::ImageError;
use crate::instance_dir::domain_name;
use crate::state::PowerState;

/// Why a build failed; its chain ([`error_chain`]) is the instance's state
/// reason.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No fixed IP.
    #[error("network")]
    Network(#[source] RpcError),
    /// The bridge or VLAN could not be set up.
    #[error("bridge")]
    Bridge(#[source] CommandError),
    /// The image could not be fetched or used.
    #[error("image")]
    Image(#[from] ImageError),
    /// The instance folder could not be written.
    #[error("instance files")]
    Files(#[source] std::io::Error),
    /// The disk could not be prepared (key injection, config drive).
    #[error("preparing the disk")]
    PrepareDisk(#[source] PrepareError),
    /// The firewall could not be applied.
    #[error("firewall")]
    Firewall(#[source] CommandError),
    /// The hypervisor failed.
    #[error("hypervisor")]
    Driver(#[from] DriverError),
    /// The network controller answered with an address that does not parse.
    #[error("network: unusable address {value:?}")]
    BadAddress {
        /// The address as received.
        value: String,
        /// The parse error.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The MAC address made from the instance id does not parse.
    #[error("unusable MAC address {value:?}")]
    BadMac {
        /// The address as made.
        value: String,
        /// The parse error.
        #[source]
        source: InvalidId,
    },
}

impl BuildError {
    /// Whether another host might succeed: failures of this host's
    /// hypervisor, files, bridges or firewall are worth a try elsewhere; a
    /// missing image, a bad disk or an exhausted network fail everywhere
    /// alike, so the user hears the real reason at once.
    pub fn another_host_may_succeed(&self) -> bool {
        match self {
            Self::Bridge(_) | Self::Files(_) | Self::Firewall(_) | Self::Driver(_) => true,
            Self::Image(ImageError::Io { source, .. }) => {
                source.kind() != std::io::ErrorKind::NotFound
            }
            Self::Image(_)
            | Self::Network(_)
            | Self::PrepareDisk(_)
            | Self::BadAddress { .. }
            | Self::BadMac { .. } => false,
        }
    }
}

/// How long each step of a build took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildTimings {
    /// Fixed IP allocation and bridge.
    pub network: Duration,
    /// Image fetch, overlay, kernel and ramdisk.
    pub image: Duration,
    /// Disk preparation hook.
    pub prepare: Duration,
    /// Rendering the domain.
    pub xml: Duration,
    /// Applying the firewall.
    pub firewall: Duration,
    /// Defining, starting and waiting for RUNNING.
    pub libvirt: Duration,
    /// All of it.
    pub total: Duration,
}

impl ComputeManager {
    /// Builds and boots the instance. A second call for the same instance
    /// waits for the first, and finds it running.
    #[instrument(skip_all, fields(instance_id = %request.instance_id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn run_instance(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
    ) -> Option<BuildTimings> {
        let id = request.instance_id;
        let _held = self.locks.lock(id).await;
        if self.interrupted.claimed(id) {
            info!("building again what a restart interrupted");
        }
        // A request cast straight to this host (no scheduler) is attempt 1.
        let attempt = u32::try_from(request.placement.hosts_tried.len().max(1)).unwrap_or(u32::MAX);
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, attempt);
        let name = domain_name(&id);
        if let Ok(Some(PowerState::Running)) = self.parts.driver.state(&name).await {
            info!("already running");
            self.report(ctx, id, InstanceState::Running, None, None)
                .await;
            return None;
        }
        if let Err(reason) = self.claim(request) {
            warn!(%reason, "refusing the build");
            self.reschedule(ctx, request, reason).await;
            return None;
        }
        self.report(ctx, id, InstanceState::Pending, Some("networking"), None)
            .await;
        match self.build(ctx, request).await {
            Ok(timings) => {
                record_step_metrics(&timings);
                info!(total_ms = timings.total.as_millis() as u64, "running");
                self.report(ctx, id, InstanceState::Running, None, None)
                    .await;
                Some(timings)
            }
            Err(e) => {
                self.build_failed(ctx, request, &e).await;
                None
            }
        }
    }

    /// Reports a failed build and cleans up after it: handed to another
    /// host when one may succeed, else the instance ends in error at once.
    async fn build_failed(&self, ctx: &RequestContext, request: &RunInstance, e: &BuildError) {
        let id = request.instance_id;
        let reason = error_chain(e);
        warn!(%reason, "build failed; cleaning up");
        if !e.another_host_may_succeed() {
            // The user hears why at once; cleaning up may itself wait on
            // what failed (an unreachable network controller).
            self.report(ctx, id, InstanceState::Error, None, Some(reason))
                .await;
            self.clean_up(ctx, id).await;
            return;
        }
        // Clean before handing back: the next host must not meet this one's
        // leftovers (its address above all). An address still held would
        // be released from under the next host's guest later, so then it
        // ends here.
        let why_not = match self.clean_up(ctx, id).await {
            CleanUp::Done => return self.reschedule(ctx, request, reason).await,
            CleanUp::AddressHeld => "its fixed IP could not be released yet".to_owned(),
            CleanUp::DomainRemains(e) => {
                format!("its domain could not be destroyed: {}", error_chain(&e))
            }
        };
        let reason = format!("{reason}; not tried on another host: {why_not}");
        self.report(ctx, id, InstanceState::Error, None, Some(reason))
            .await;
    }

    /// Hands an instance this host could not build back to the scheduler,
    /// which tries another host or ends it in error with the reason.
    async fn reschedule(&self, ctx: &RequestContext, request: &RunInstance, reason: String) {
        let id = request.instance_id;
        let mut again = request.clone();
        let placement = &mut again.placement;
        // A request cast straight to this host has no record of it yet.
        if placement.hosts_tried.last() != Some(&self.parts.host) {
            placement.hosts_tried.push(self.parts.host.clone());
        }
        // The host is in hosts_tried; the reason alone reaches the client.
        placement.failures.push(reason.clone());
        placement.limits = None;
        self.report(
            ctx,
            id,
            InstanceState::Pending,
            Some("scheduling"),
            Some(reason.clone()),
        )
        .await;
        self.forget(id);
        let handed_back = self
            .parts
            .scheduler
            .run_instance(
                ctx,
                &ScheduleRunInstances {
                    instances: vec![again],
                },
            )
            .await;
        if let Err(e) = handed_back {
            // The RPC error names queues and hosts: the log keeps it, the
            // reason (which clients read) says what it meant.
            warn!(instance_id = %id, error = %error_chain(&e), "could not hand the build back");
            let reason = format!("{reason}; it could not be handed back for another host");
            self.report(ctx, id, InstanceState::Error, None, Some(reason))
                .await;
        }
    }
}

/// Feeds each step's time to the build-step histogram.
fn record_step_metrics(timings: &BuildTimings) {
    let steps = &stratus_rpc::metrics::metrics().build_steps;
    for (step, took) in [
        ("network", timings.network),
        ("image", timings.image),
        ("prepare", timings.prepare),
        ("xml", timings.xml),
        ("firewall", timings.firewall),
        ("libvirt", timings.libvirt),
        ("total", timings.total),
    ] {
        steps
            .get_or_create(&stratus_rpc::metrics::labels(&[("step", step)]))
            .observe(took.as_secs_f64());
    }
}
