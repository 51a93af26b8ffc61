//! The periodic reconcile with the conductor: this host asks what the
//! database says of every instance it holds anything of (a folder, a
//! domain) and removes what the cloud no longer wants here: instances gone
//! (terminated or in error: everything, the address too) and copies of
//! instances another host holds at a later placement (the address stays:
//! it is per instance, so that host's guest has it). An unknown answer, a
//! failed call, or a build under way here is never acted on.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::conductor::{
    InstanceState, InstanceStatesQuery, InstanceUpdate, KnownInstance, next_sequence,
};
use stratus_rpc::wire::ids::InstanceId;
use tracing::{Instrument, info, warn};

use super::ComputeManager;
use super::clean_up::CleanUp;
use super::journal::attempt_of;
use crate::instance_dir::{InstanceDir, InstanceRecord};

/// Instances asked about per call.
const BATCH: usize = 200;

/// How long a report waits to be seen confirmed before it is dropped (an
/// hour, in the microseconds sequences count).
const UNCONFIRMED_KEPT_MICROS: u64 = 3600 * 1_000_000;

/// How long after its claim a build counts as under way though its lock
/// is free (a claim that waits to be asked again).
const CLAIM_FRESH_SECS: u64 = 60;

impl ComputeManager {
    /// Resumes builds whose claim could not be asked, then reconciles what
    /// this host holds with the conductor's view.
    pub async fn reconcile(self: &Arc<Self>, ctx: &RequestContext) {
        self.resume_unclaimed(ctx);
        let oldest = next_sequence().saturating_sub(UNCONFIRMED_KEPT_MICROS);
        self.outbox.prune_unconfirmed(oldest);
        let mut held = self.held_here().await;
        held.extend(self.outbox.unconfirmed_ids());
        let held: Vec<InstanceId> = held.into_iter().collect();
        for batch in held.chunks(BATCH) {
            let query = InstanceStatesQuery {
                ids: batch.to_vec(),
            };
            let known = match self.parts.conductor.instance_states(ctx, &query).await {
                Ok(known) => known,
                Err(e) => {
                    warn!(error = %error_chain(&e), "could not ask the conductor what it knows; reconciling later");
                    return;
                }
            };
            for instance in known {
                if batch.contains(&instance.instance_id) {
                    self.confirm(ctx, &instance).await;
                    self.reconcile_one(ctx, instance).await;
                }
            }
        }
    }

    /// Starts again, each in a task under its lock, the builds whose claim
    /// went unanswered.
    fn resume_unclaimed(self: &Arc<Self>, ctx: &RequestContext) {
        let waiting: Vec<InstanceId> = self
            .awaiting_claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for id in waiting {
            let manager = self.clone();
            let ctx = ctx.clone();
            let span = tracing::info_span!("resume", instance_id = %id);
            let resume = async move {
                let _held = manager.locks.lock(id).await;
                let root = manager.dir(&id).root().to_owned();
                let still = InstanceDir::read_record(&root)
                    .await
                    .is_some_and(|r| r.step.under_way());
                match InstanceDir::read_request(&root).await {
                    Some(request) if still => {
                        info!(instance_id = %id, "asking again for a build the conductor did not answer");
                        manager.run_locked(&ctx, &request).await;
                    }
                    _ => {}
                }
            };
            tokio::spawn(resume.instrument(span));
        }
    }

    /// Every instance this host has a folder or an `instance-*` domain of.
    async fn held_here(&self) -> BTreeSet<InstanceId> {
        let mut held = BTreeSet::new();
        let mut folders = BTreeSet::new();
        if let Ok(mut entries) = tokio::fs::read_dir(&self.parts.instances_dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                if let Some(record) = InstanceDir::read_record(&entry.path()).await {
                    folders.insert(entry.file_name().to_string_lossy().into_owned());
                    held.insert(record.instance_id);
                }
            }
        }
        match self.parts.driver.list().await {
            Ok(domains) => {
                for (name, _) in domains {
                    if !name.starts_with("instance-") || folders.contains(&name) {
                        continue;
                    }
                    match self.parts.driver.uuid(&name).await {
                        Ok(Some(uuid)) => {
                            held.insert(InstanceId(uuid));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            warn!(domain = %name, error = %error_chain(&e), "could not read a domain's UUID")
                        }
                    }
                }
            }
            Err(e) => warn!(error = %error_chain(&e), "could not list the domains"),
        }
        held
    }

    /// Removes the instance when the conductor says it is gone, or held
    /// by another host at a later placement.
    async fn reconcile_one(&self, ctx: &RequestContext, known: KnownInstance) {
        let id = known.instance_id;
        let Some(state) = known.state else {
            return;
        };
        let gone = matches!(state, InstanceState::Terminated | InstanceState::Error);
        let elsewhere = known.host.as_ref().is_some_and(|h| *h != self.parts.host);
        // Pending here though built: the report that said so was lost.
        let unheard = state == InstanceState::Pending && !elsewhere;
        if !gone && !elsewhere && !unheard {
            return;
        }
        // Busy: a build, a terminate or a flush is at it now.
        let Some(_held) = self.try_lock(id).await else {
            return;
        };
        let root = self.dir(&id).root().to_owned();
        let record = InstanceDir::read_record(&root).await;
        if record.as_ref().is_some_and(claimed_recently) {
            return;
        }
        // A report not yet delivered is this host's newer word on it.
        if self.outbox.holds_report(id) {
            return;
        }
        if unheard {
            if record.as_ref().is_some_and(InstanceRecord::built) {
                info!(instance_id = %id, "the conductor still has a built instance pending; reporting it again");
                self.report_found(ctx, id, &crate::instance_dir::domain_name(&id))
                    .await;
            }
            return;
        }
        if gone {
            info!(instance_id = %id, ?state, "removing an instance the conductor says is gone");
            self.parts.prepare.release_leftovers(&root).await;
            if let CleanUp::DomainRemains(e) = self.clean_up(ctx, id).await {
                warn!(instance_id = %id, error = %error_chain(&e), "could not remove it; trying again later");
                return;
            }
        } else {
            let ours = match InstanceDir::read_request(&root).await {
                Some(request) => attempt_of(&request),
                None => self.attempt_here(id),
            };
            if known.attempt <= ours {
                return;
            }
            info!(instance_id = %id, host = ?known.host, attempt = known.attempt, "removing a copy another host holds at a later placement");
            self.parts.prepare.release_leftovers(&root).await;
            if let CleanUp::DomainRemains(e) = self.clean_up_with(ctx, id, false).await {
                warn!(instance_id = %id, error = %error_chain(&e), "could not remove the copy; trying again later");
                return;
            }
        }
        self.forget(id);
        self.awaiting_claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// A failure (or terminate) report waiting for confirmation is sent
    /// again while the conductor still has the instance as before it (pending,
    /// or shutting down) with this host or none: the first cast died with
    /// the process. Otherwise it is known, or moot.
    async fn confirm(&self, ctx: &RequestContext, known: &KnownInstance) {
        let id = known.instance_id;
        // Unknown is no answer; a report still to send is a newer word.
        if known.state.is_none() || self.outbox.holds_report(id) {
            return;
        }
        // A build of it under way here has the newer word: ask next time.
        let Some(_held) = self.try_lock(id).await else {
            return;
        };
        let root = self.dir(&id).root().to_owned();
        if InstanceDir::read_record(&root)
            .await
            .is_some_and(|r| r.step.under_way())
        {
            return;
        }
        let Some(held) = self.outbox.take_unconfirmed(id) else {
            return;
        };
        let ours = known.host.as_ref().is_none_or(|h| *h == self.parts.host);
        let unheard = matches!(
            (known.state, held.state),
            (Some(InstanceState::Pending), InstanceState::Error)
                | (
                    Some(InstanceState::ShuttingDown | InstanceState::Running),
                    InstanceState::Terminated
                )
        );
        if !unheard || !ours {
            return;
        }
        info!(instance_id = %id, "the conductor never heard this failure; reporting it again");
        let update = InstanceUpdate {
            sequence: next_sequence(),
            ..held
        };
        self.outbox.until_confirmed(update.clone());
        self.send(ctx, update).await;
    }

    /// The placement this host built the instance for, if it knows.
    fn attempt_here(&self, id: InstanceId) -> u32 {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

/// Whether the record is of a build under way claimed less than
/// [`CLAIM_FRESH_SECS`] ago.
fn claimed_recently(record: &InstanceRecord) -> bool {
    if !record.step.under_way() {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    record
        .claimed_at
        .is_some_and(|at| now.saturating_sub(at) < CLAIM_FRESH_SECS)
}
