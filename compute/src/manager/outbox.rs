//! What could not be sent while the broker or a service was away: state
//! reports and fixed-IP releases. The periodic loop sends them again, so a
//! broker restart loses neither an instance's last state nor an address.
//! It lives in a file beside the host state (`compute-outbox.json`), written
//! whole on every change, so a worker crash loses neither either: a failed
//! build's error report goes in before its clean-up starts.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::conductor::{InstanceUpdate, next_sequence};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::ReleaseFixedIp;
use tracing::{info, warn};

use super::ComputeManager;

/// Reports and releases waiting to be sent again, kept in a file so a
/// crash loses none of them.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// The newest unsent report per instance: the conductor keeps the
    /// highest sequence, so older ones would change nothing.
    reports: Mutex<HashMap<InstanceId, InstanceUpdate>>,
    /// Instances whose fixed IP may still be held for them.
    releases: Mutex<HashSet<InstanceId>>,
    /// Failure reports kept, sent or not, until the conductor is seen to
    /// know them: a cast handed to the in-process bus dies with the process.
    unconfirmed: Mutex<HashMap<InstanceId, InstanceUpdate>>,
    /// Where it is kept (none: in memory only).
    file: Option<PathBuf>,
    /// Held while a copy is written, so an older copy never lands last.
    writing: Mutex<()>,
}

/// The outbox as written to its file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    reports: Vec<InstanceUpdate>,
    #[serde(default)]
    releases: Vec<InstanceId>,
    #[serde(default)]
    unconfirmed: Vec<InstanceUpdate>,
}

impl Outbox {
    /// The outbox kept in `file`, with what an earlier run left in it.
    pub(super) fn load(file: PathBuf) -> Self {
        let stored: Stored = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(file = %file.display(), error = %e, "unreadable outbox; starting empty");
                Stored::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => {
                warn!(file = %file.display(), error = %e, "unreadable outbox; starting empty");
                Stored::default()
            }
        };
        Self {
            reports: Mutex::new(
                stored
                    .reports
                    .into_iter()
                    .map(|u| (u.instance_id, u))
                    .collect(),
            ),
            releases: Mutex::new(stored.releases.into_iter().collect()),
            unconfirmed: Mutex::new(
                stored
                    .unconfirmed
                    .into_iter()
                    .map(|u| (u.instance_id, u))
                    .collect(),
            ),
            file: Some(file),
            writing: Mutex::new(()),
        }
    }

    // A panic elsewhere while holding one of these leaves a map still worth
    // sending from, so a poisoned lock is used as it is.
    fn reports(&self) -> MutexGuard<'_, HashMap<InstanceId, InstanceUpdate>> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn releases(&self) -> MutexGuard<'_, HashSet<InstanceId>> {
        self.releases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unconfirmed(&self) -> MutexGuard<'_, HashMap<InstanceId, InstanceUpdate>> {
        self.unconfirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the outbox to its file (a small file: blocking is brief).
    fn save(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reports: Vec<InstanceUpdate> = self.reports().values().cloned().collect();
        reports.sort_by_key(|u| u.sequence);
        let mut releases: Vec<InstanceId> = self.releases().iter().copied().collect();
        releases.sort();
        let mut unconfirmed: Vec<InstanceUpdate> = self.unconfirmed().values().cloned().collect();
        unconfirmed.sort_by_key(|u| u.sequence);
        let stored = Stored {
            reports,
            releases,
            unconfirmed,
        };
        let written = serde_json::to_vec_pretty(&stored)
            .map_err(std::io::Error::other)
            .and_then(|json| crate::durable::write_atomically(file, &json));
        if let Err(e) = written {
            warn!(file = %file.display(), error = %e, "could not write the outbox");
        }
    }

    /// Keeps `update` unless a newer one for its instance is already waiting.
    pub(super) fn report_failed(&self, update: InstanceUpdate) {
        let kept = {
            let mut reports = self.reports();
            let newer = reports
                .get(&update.instance_id)
                .is_some_and(|waiting| waiting.sequence > update.sequence);
            if !newer {
                reports.insert(update.instance_id, update);
            }
            !newer
        };
        if kept {
            self.save();
        }
    }

    /// A report for `id` went through: any older one waiting is moot.
    pub(super) fn reported(&self, id: InstanceId, sequence: u64) {
        let removed = {
            let mut reports = self.reports();
            let moot = reports.get(&id).is_some_and(|w| w.sequence <= sequence);
            if moot {
                reports.remove(&id);
            }
            let mut unconfirmed = self.unconfirmed();
            let superseded = unconfirmed.get(&id).is_some_and(|w| w.sequence < sequence);
            if superseded {
                unconfirmed.remove(&id);
            }
            moot || superseded
        };
        if removed {
            self.save();
        }
    }

    /// Keeps the failure report `update` (in the file, before it is sent)
    /// until the conductor is seen to know it.
    pub(super) fn until_confirmed(&self, update: InstanceUpdate) {
        self.unconfirmed().insert(update.instance_id, update);
        self.save();
    }

    /// Drops reports waiting for a confirmation since before `oldest` (a
    /// sequence: microseconds since the epoch): an api that forgot the
    /// instance never confirms it, and the outbox must not grow forever.
    pub(super) fn prune_unconfirmed(&self, oldest: u64) {
        let pruned = {
            let mut unconfirmed = self.unconfirmed();
            let before = unconfirmed.len();
            unconfirmed.retain(|_, u| u.sequence >= oldest);
            unconfirmed.len() != before
        };
        if pruned {
            self.save();
        }
    }

    /// The instances whose failure reports wait to be confirmed.
    pub(super) fn unconfirmed_ids(&self) -> Vec<InstanceId> {
        self.unconfirmed().keys().copied().collect()
    }

    /// The failure report waiting for `id`'s confirmation, taken out.
    pub(super) fn take_unconfirmed(&self, id: InstanceId) -> Option<InstanceUpdate> {
        let taken = self.unconfirmed().remove(&id);
        if taken.is_some() {
            self.save();
        }
        taken
    }

    /// Whether a report for `id` waits to be sent.
    pub(super) fn holds_report(&self, id: InstanceId) -> bool {
        self.reports().contains_key(&id)
    }

    /// The release of `id`'s address failed; send it again later.
    pub(super) fn release_failed(&self, id: InstanceId) {
        if self.releases().insert(id) {
            self.save();
        }
    }

    /// `id`'s address is released, or is to be kept: nothing to send.
    fn released(&self, id: InstanceId) {
        if self.releases().remove(&id) {
            self.save();
        }
    }

    /// `id` is being built here again: the allocation it gets is the one
    /// still held (allocation is per instance), so releasing it later would
    /// take the address from under the new guest.
    pub(super) fn building(&self, id: InstanceId) {
        self.released(id);
    }
}

impl ComputeManager {
    /// Sends again what failed to go out, oldest report first; what fails
    /// again waits for the next round.
    pub async fn flush_outbox(&self, ctx: &RequestContext) {
        let releases: Vec<InstanceId> = self.outbox.releases().iter().copied().collect();
        for id in releases {
            // Under the instance's lock, so a new build of it cannot start
            // between the check and the release; one under way (it may take
            // minutes) is not waited for: the next round comes.
            let Some(_held) = self.try_lock(id).await else {
                continue;
            };
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
                    self.outbox.released(id);
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
            // Busy: whatever holds it reports after it.
            let Some(_held) = self.try_lock(id).await else {
                continue;
            };
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
