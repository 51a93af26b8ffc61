//! Builds a restart cut short. Their `run_instance` was never acked, so the
//! broker delivers it again once the worker serves, and the build starts
//! over: reporting them in error at recovery would show users an error that
//! a moment later turns back into pending. Recovery cleans them up and
//! notes them here; any that no request or terminate claims within
//! `interrupted_build_grace_secs` (the queue expired while the worker was
//! down, or the transport keeps nothing, as the in-process one) is then
//! reported in error.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use stratus_rpc::RequestContext;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;
use tracing::info;

use super::ComputeManager;

/// Interrupted builds waiting for their request to come back.
#[derive(Debug, Default)]
pub(super) struct Interrupted(Mutex<HashSet<InstanceId>>);

impl Interrupted {
    /// Notes a build recovery cleaned up.
    pub(super) fn wait_for_request(&self, id: InstanceId) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    /// The instance is being handled again; whether it was waiting.
    pub(super) fn claimed(&self, id: InstanceId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    fn waiting(&self) -> Vec<InstanceId> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
}

impl ComputeManager {
    /// Reports in error each interrupted build nothing claimed in time.
    pub(super) async fn report_unclaimed_builds(&self, ctx: &RequestContext) {
        let grace = self.parts.config.interrupted_build_grace_secs;
        for id in self.interrupted.waiting() {
            let _held = self.locks.lock(id).await;
            // A request may have claimed it while this waited for the lock.
            if !self.interrupted.claimed(id) {
                continue;
            }
            info!(instance_id = %id, "no request came back for a build a restart interrupted");
            let reason = format!(
                "the build was interrupted by a compute worker restart and its request did not come back within {grace} s"
            );
            self.report(ctx, id, InstanceState::Error, None, Some(reason))
                .await;
        }
    }
}
