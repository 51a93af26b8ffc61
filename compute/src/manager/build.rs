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
use super::journal::{Claim, attempt_of};
use super::{ComputeManager, PrepareError};
use crate::driver::DriverError;
use crate::image_cache::ImageError;
use crate::instance_dir::{BuildStep, InstanceDir, InstanceRecord, domain_name};
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
        let _held = self.locks.lock(request.instance_id).await;
        self.run_locked(ctx, request).await
    }

    /// [`Self::run_instance`] with the instance's lock held: a new request,
    /// a redelivered one, or a build a restart interrupted, resumed.
    pub(super) async fn run_locked(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
    ) -> Option<BuildTimings> {
        let id = request.instance_id;
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, attempt_of(request));
        let dir = self.dir(&id);
        if self.already_here(ctx, request, &dir).await {
            return None;
        }
        // A resumed build was admitted before the restart: it is not
        // measured again (refused, it would leave its journal and address).
        let resumed = tokio::fs::try_exists(dir.record()).await.unwrap_or(false);
        if resumed {
            self.flavors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, request.flavor.clone());
        } else if let Err(reason) = self.claim(request) {
            warn!(%reason, "refusing the build");
            self.reschedule(ctx, request, reason).await;
            return None;
        }
        let mut record = match self.journal(request, &dir).await {
            Ok(record) => record,
            Err(e) => {
                self.build_failed(ctx, request, &e).await;
                return None;
            }
        };
        match self.claim_build(ctx, request).await {
            Claim::Granted => {}
            Claim::Refused {
                reason,
                release_address,
            } => {
                self.claim_refused(ctx, request, &reason, release_address)
                    .await;
                return None;
            }
            Claim::Unanswered => {
                self.forget(id);
                self.awaiting_claim
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id);
                return None;
            }
        }
        let built = match self.step(&dir, &mut record, BuildStep::Claimed).await {
            Ok(()) => self.build(ctx, request, &dir, &mut record).await,
            Err(e) => Err(e),
        };
        match built {
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

    /// Whether the instance is here already (a request delivered again):
    /// a running or stopped guest is reported as it is and its record
    /// marked built; what an interrupted build left is cleared for the
    /// build to start over (its address kept).
    async fn already_here(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
        dir: &InstanceDir,
    ) -> bool {
        let id = request.instance_id;
        let record = InstanceDir::read_record(dir.root()).await;
        let state = self.parts.driver.state(&domain_name(&id)).await;
        let finished = record.as_ref().is_some_and(InstanceRecord::built);
        let failed = record.as_ref().is_some_and(|r| r.step == BuildStep::Failed);
        let reported = match state {
            Ok(Some(PowerState::Running)) if !failed => InstanceState::Running,
            Ok(Some(PowerState::Shutoff | PowerState::Crashed)) if finished => {
                InstanceState::Stopped
            }
            _ => {
                if record.is_some_and(|r| !r.built()) && !self.clear_partial(id).await {
                    warn!("what an earlier build left cannot be removed; building anyway");
                }
                return false;
            }
        };
        info!(?reported, "already here");
        // What the record says: a start may have resized it since the
        // request was first sent.
        let flavor = record
            .as_ref()
            .map_or_else(|| request.flavor.clone(), |r| r.flavor.clone());
        if let Some(record) = record.filter(|r| !r.built()) {
            let built = InstanceRecord {
                step: BuildStep::Built,
                ..record
            };
            if let Err(e) = dir.write_record(&built).await {
                warn!(error = %error_chain(&e), "could not record the finished build");
            }
        }
        self.flavors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, flavor);
        self.report(ctx, id, reported, None, None).await;
        true
    }

    /// Reports a failed build and cleans up after it: handed to another
    /// host when one may succeed, else the instance ends in error at once.
    /// The error report is in the outbox file before the clean-up starts,
    /// so a crash during it cannot swallow the news.
    async fn build_failed(&self, ctx: &RequestContext, request: &RunInstance, e: &BuildError) {
        let id = request.instance_id;
        let reason = error_chain(e);
        warn!(%reason, "build failed; cleaning up");
        let dir = self.dir(&id);
        if !e.another_host_may_succeed() {
            // The user hears why at once; cleaning up may itself wait on
            // what failed (an unreachable network controller).
            self.report_durably(ctx, id, InstanceState::Error, reason)
                .await;
            self.mark_failed(&dir).await;
            self.clean_up(ctx, id).await;
            return;
        }
        // Should the worker die before the instance is handed back, it ends
        // in error with the reason rather than pending with nothing behind it.
        let fallback = self.update(id, InstanceState::Error, None, Some(reason.clone()));
        self.outbox.until_confirmed(fallback);
        self.mark_failed(&dir).await;
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
        self.report_durably(ctx, id, InstanceState::Error, reason)
            .await;
    }

    /// Records that the build failed, so a restart cleans it up instead of
    /// building it again (its report is in the outbox already).
    async fn mark_failed(&self, dir: &InstanceDir) {
        if let Some(mut record) = InstanceDir::read_record(dir.root()).await
            && let Err(e) = self.step(dir, &mut record, BuildStep::Failed).await
        {
            warn!(error = %error_chain(&e), "could not record the failed build");
        }
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
