//! The conductor: records what compute hosts report about instances. Until
//! the instance tables exist it logs each state change, and keeps what the
//! metadata service needs in memory.

use std::sync::Arc;

use base64::Engine;
use stratus_rpc::RequestContext;
use stratus_rpc::wire::conductor::{GuestMetadata, InstanceState, InstanceUpdate};
use tracing::{info, warn};

use crate::metadata::{InstanceMetadata, MemorySource};

/// Records instance state changes and guest metadata.
#[derive(Debug, Default)]
pub struct Conductor {
    metadata: Arc<MemorySource>,
}

impl Conductor {
    /// A conductor keeping guest metadata in `metadata`.
    pub fn new(metadata: Arc<MemorySource>) -> Self {
        Self { metadata }
    }

    /// Records one state change; a gone instance leaves the metadata service.
    pub fn instance_update(&self, ctx: &RequestContext, update: &InstanceUpdate) {
        info!(
            request_id = %ctx.request_id,
            instance_id = %update.instance_id,
            host = update.host.as_ref().map(ToString::to_string).unwrap_or_default(),
            state = ?update.state,
            task_state = update.task_state.as_deref().unwrap_or(""),
            reason = update.reason.as_deref().unwrap_or(""),
            "instance state changed"
        );
        if matches!(
            update.state,
            InstanceState::Terminated | InstanceState::Error
        ) {
            self.metadata
                .remove_instance(&update.instance_id.to_string());
        }
    }

    /// Records what the metadata service tells an instance.
    pub fn instance_metadata(&self, metadata: &GuestMetadata) {
        let user_data = match &metadata.user_data {
            Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(data) => Some(data),
                Err(e) => {
                    warn!(instance_id = %metadata.instance_id, error = %e, "user data is not base64; serving none");
                    None
                }
            },
            None => None,
        };
        let ec2_id = metadata.instance_id.ec2_id();
        self.metadata.insert(InstanceMetadata {
            instance_id: ec2_id.clone(),
            uuid: metadata.instance_id.to_string(),
            hostname: ec2_id,
            local_ipv4: metadata.fixed_ip,
            ami_id: metadata.ami_id.clone(),
            reservation_id: metadata.reservation_id.clone(),
            availability_zone: metadata.availability_zone.clone(),
            security_groups: metadata.security_groups.clone(),
            key: metadata.key.clone(),
            user_data,
        });
    }
}
