//! The journal of a build in its instance folder (`instance.json` with the
//! step reached, `request.json` with what was asked), each step written
//! before it acts; and the claim the conductor grants before anything is
//! built, so a request delivered twice is built once.

use std::time::{Duration, Instant};

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::{BuildClaim, ClaimAnswer, next_sequence};
use tracing::{info, warn};

use super::ComputeManager;
use super::build::BuildError;
use super::clean_up::CleanUp;
use crate::instance_dir::{BuildStep, InstanceDir, InstanceRecord, domain_name};

/// How long a build keeps asking for its claim while the conductor (or the
/// broker) is away before it leaves the build to the periodic reconcile.
const CLAIM_PATIENCE: Duration = Duration::from_secs(30);

/// What the conductor said to a claim.
#[derive(Debug)]
pub(super) enum Claim {
    /// Build it.
    Granted,
    /// Do not; remove what is here, the address too when `release_address`.
    Refused {
        /// Why.
        reason: String,
        /// Whether the instance's address may go.
        release_address: bool,
    },
    /// No answer within [`CLAIM_PATIENCE`]: the journal keeps the build.
    Unanswered,
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ComputeManager {
    /// Saves the request and a record at `Recorded`, before anything is
    /// asked or built.
    pub(super) async fn journal(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
    ) -> Result<InstanceRecord, BuildError> {
        self.outbox.building(request.instance_id);
        tokio::fs::create_dir_all(dir.root())
            .await
            .map_err(BuildError::Files)?;
        dir.write_request(request)
            .await
            .map_err(BuildError::Files)?;
        let record = InstanceRecord {
            instance_id: request.instance_id,
            project_id: request.project_id.clone(),
            flavor: request.flavor.clone(),
            step: BuildStep::Recorded,
            claimed_at: None,
        };
        dir.write_record(&record).await.map_err(BuildError::Files)?;
        Ok(record)
    }

    /// Records that the build reached `step`, before the step acts.
    pub(super) async fn step(
        &self,
        dir: &InstanceDir,
        record: &mut InstanceRecord,
        step: BuildStep,
    ) -> Result<(), BuildError> {
        record.step = step;
        if step == BuildStep::Claimed {
            record.claimed_at = Some(now_secs());
        }
        dir.write_record(record).await.map_err(BuildError::Files)
    }

    /// Asks the conductor for the build, again with a growing pause while
    /// it cannot be reached, for [`CLAIM_PATIENCE`] at most.
    pub(super) async fn claim_build(&self, ctx: &RequestContext, request: &RunInstance) -> Claim {
        let claim = BuildClaim {
            instance_id: request.instance_id,
            host: self.parts.host.clone(),
            attempt: attempt_of(request),
            sequence: 0,
        };
        let deadline = Instant::now() + CLAIM_PATIENCE;
        let mut pause = Duration::from_millis(250);
        loop {
            let asked = BuildClaim {
                sequence: next_sequence(),
                ..claim.clone()
            };
            match self.parts.conductor.claim_build(ctx, &asked).await {
                Ok(ClaimAnswer::Granted) => return Claim::Granted,
                Ok(ClaimAnswer::Refused {
                    reason,
                    release_address,
                }) => {
                    return Claim::Refused {
                        reason,
                        release_address,
                    };
                }
                Err(e) if Instant::now() + pause < deadline => {
                    warn!(error = %error_chain(&e), "could not ask for the build; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    warn!(error = %error_chain(&e), "could not ask for the build; the periodic reconcile will");
                    return Claim::Unanswered;
                }
            }
        }
    }

    /// A refused claim: nothing of the instance stays here (its address
    /// only goes when the conductor says the instance is gone).
    pub(super) async fn claim_refused(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
        reason: &str,
        release_address: bool,
    ) {
        let id = request.instance_id;
        info!(%reason, release_address, "the conductor refused the build");
        self.parts
            .prepare
            .release_leftovers(self.dir(&id).root())
            .await;
        if let CleanUp::DomainRemains(e) = self.clean_up_with(ctx, id, release_address).await {
            warn!(error = %error_chain(&e), "could not remove a refused build; the reconcile will try again");
        }
        self.forget(id);
    }

    /// Undoes what an interrupted build may have left (mounts, a domain,
    /// filters, files other than its journal), keeping its address for the
    /// build that resumes it. False when the domain could not be destroyed.
    pub(super) async fn clear_partial(&self, id: stratus_rpc::wire::ids::InstanceId) -> bool {
        let dir = self.dir(&id);
        self.parts.prepare.release_leftovers(dir.root()).await;
        if let Err(e) = self.parts.driver.destroy(&domain_name(&id)).await {
            warn!(instance_id = %id, error = %error_chain(&e), "could not destroy what an interrupted build started");
            return false;
        }
        if let Err(e) = self.parts.firewall.remove_instance(id).await {
            warn!(instance_id = %id, error = %error_chain(&e), "removing the firewall chains failed");
        }
        if let Err(e) = dir.clear_all_but_the_journal().await {
            warn!(instance_id = %id, error = %error_chain(&e), "could not clear the instance folder");
        }
        true
    }
}

impl ComputeManager {
    /// Records that the instance is leaving this host (`step`: terminating
    /// or removing a copy) before anything of it goes; the record as it
    /// was, to put back should the domain refuse to go.
    pub(super) async fn mark_leaving(
        &self,
        id: stratus_rpc::wire::ids::InstanceId,
        step: BuildStep,
    ) -> Option<InstanceRecord> {
        let dir = self.dir(&id);
        let before = InstanceDir::read_record(dir.root()).await?;
        let leaving = InstanceRecord {
            step,
            ..before.clone()
        };
        if let Err(e) = dir.write_record(&leaving).await {
            warn!(instance_id = %id, error = %error_chain(&e), "could not record the removal");
        }
        Some(before)
    }

    /// Puts back the record `mark_leaving` replaced.
    pub(super) async fn unmark_leaving(&self, before: Option<InstanceRecord>) {
        let Some(before) = before else {
            return;
        };
        let dir = self.dir(&before.instance_id);
        if let Err(e) = dir.write_record(&before).await {
            warn!(instance_id = %before.instance_id, error = %error_chain(&e), "could not restore the record");
        }
    }
}

/// Which placement of the instance `request` is: the hosts tried, this one
/// included (a request cast straight to a host is attempt 1).
pub(super) fn attempt_of(request: &RunInstance) -> u32 {
    u32::try_from(request.placement.hosts_tried.len().max(1)).unwrap_or(u32::MAX)
}
