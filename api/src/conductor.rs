//! The conductor: records what compute hosts report about instances.
//! Until the instance tables exist it logs each state change.

use stratus_rpc::RequestContext;
use stratus_rpc::wire::conductor::InstanceUpdate;
use tracing::info;

/// Records instance state changes.
#[derive(Debug, Default)]
pub struct Conductor;

impl Conductor {
    /// Records one state change.
    pub fn instance_update(&self, ctx: &RequestContext, update: &InstanceUpdate) {
        info!(
            request_id = %ctx.request_id,
            instance_id = %update.instance_id,
            host = %update.host,
            state = ?update.state,
            task_state = update.task_state.as_deref().unwrap_or(""),
            reason = update.reason.as_deref().unwrap_or(""),
            "instance state changed"
        );
    }
}
