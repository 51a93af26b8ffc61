//! What could not be sent while the broker or a service was away: state
//! reports and fixed-IP releases. The periodic loop sends them again, so a
//! broker restart loses neither an instance's last state nor an address.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::conductor::{InstanceUpdate, next_sequence};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::ReleaseFixedIp;
use tracing::{info, warn};

use super::ComputeManager;

/// Reports and releases waiting to be sent again.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// The newest unsent report per instance: the conductor keeps the
    /// highest sequence, so older ones would change nothing.
    reports: Mutex<HashMap<InstanceId, InstanceUpdate>>,
    /// Instances whose fixed IP may still be held for them.
    releases: Mutex<HashSet<InstanceId>>,
}

impl Outbox {
    // A panic elsewhere while holding one of these leaves a map still worth
    // sending from, so a poisoned lock is used as it is.
    fn reports(&self) -> MutexGuard<'_, HashMap<InstanceId, InstanceUpdate>> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn releases(&self) -> MutexGuard<'_, HashSet<InstanceId>> {
        self.releases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `update` unless a newer one for its instance is already waiting.
    pub(super) fn report_failed(&self, update: InstanceUpdate) {
        let mut reports = self.reports();
        let newer = reports
            .get(&update.instance_id)
            .is_some_and(|waiting| waiting.sequence > update.sequence);
        if !newer {
            reports.insert(update.instance_id, update);
        }
    }

    /// A report for `id` went through: any older one waiting is moot.
    pub(super) fn reported(&self, id: InstanceId, sequence: u64) {
        let mut reports = self.reports();
        if reports.get(&id).is_some_and(|w| w.sequence <= sequence) {
            reports.remove(&id);
        }
    }

    /// The release of `id`'s address failed; send it again later.
    pub(super) fn release_failed(&self, id: InstanceId) {
        self.releases().insert(id);
    }

    /// `id` is being built here again: the allocation it gets is the one
    /// still held (allocation is per instance), so releasing it later would
    /// take the address from under the new guest.
    pub(super) fn building(&self, id: InstanceId) {
        self.releases().remove(&id);
    }
}

impl ComputeManager {
    /// Sends again what failed to go out, oldest report first; what fails
    /// again waits for the next round.
    pub async fn flush_outbox(&self, ctx: &RequestContext) {
        let releases: Vec<InstanceId> = self.outbox.releases().iter().copied().collect();
        for id in releases {
            // Under the instance's lock, so a new build of it cannot start
            // between the check and the release.
            let _held = self.locks.lock(id).await;
            let still = self.outbox.releases().contains(&id);
            if !still {
                continue;
            }
            match self
                .parts
                .network
                .release_fixed_ip(ctx, ReleaseFixedIp { instance_id: id })
                .await
            {
                Ok(()) => {
                    info!(instance_id = %id, "released the fixed IP held since an earlier failure");
                    self.outbox.releases().remove(&id);
                }
                Err(e) => {
                    warn!(instance_id = %id, error = %error_chain(&e), "releasing the fixed IP failed again");
                    break;
                }
            }
        }
        let mut reports: Vec<InstanceUpdate> = self.outbox.reports().values().cloned().collect();
        reports.sort_by_key(|u| u.sequence);
        for waiting in reports {
            let id = waiting.instance_id;
            let _held = self.locks.lock(id).await;
            // Still the newest word on it (nothing reported it meanwhile)?
            let still = self
                .outbox
                .reports()
                .get(&id)
                .is_some_and(|w| w.sequence == waiting.sequence);
            if !still {
                continue;
            }
            // Stamped now: it is this host's newest word on the instance, and
            // with its old sequence it would lose to what the api decided
            // while it waited (a build timeout, say), though the guest runs.
            let update = InstanceUpdate {
                sequence: next_sequence(),
                ..waiting
            };
            match self.parts.conductor.instance_update(ctx, &update).await {
                Ok(()) => {
                    info!(instance_id = %update.instance_id, state = ?update.state, "sent a state change held since the broker was away");
                    self.outbox.reported(update.instance_id, update.sequence);
                }
                Err(e) => {
                    warn!(instance_id = %update.instance_id, error = %error_chain(&e), "reporting the state change failed again");
                    break;
                }
            }
        }
    }
}
