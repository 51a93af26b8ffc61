//! The conductor's methods (topic `conductor`, served by the api service,
//! which owns the database).

use crate::context::RequestContext;
use crate::error::RpcError;
use crate::target::Target;
use crate::wire::conductor::{GuestMetadata, InstanceUpdate};

use super::RpcClient;

/// The topic the conductor serves.
pub const TOPIC: &str = "conductor";

/// Method names of the conductor topic.
pub mod methods {
    /// Record an instance's state change.
    pub const INSTANCE_UPDATE: &str = "instance_update";
    /// Record what the metadata service tells an instance.
    pub const INSTANCE_METADATA: &str = "instance_metadata";
    /// Every method, for logs and `--help`.
    pub const ALL: &[&str] = &[INSTANCE_UPDATE, INSTANCE_METADATA];
}

/// Talks to the conductor.
#[derive(Debug, Clone)]
pub struct ConductorClient {
    rpc: RpcClient,
}

impl ConductorClient {
    /// A client over `rpc`.
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }

    /// Records an instance's new state.
    pub async fn instance_update(
        &self,
        ctx: &RequestContext,
        update: &InstanceUpdate,
    ) -> Result<(), RpcError> {
        self.rpc
            .cast(ctx, &Target::topic(TOPIC), methods::INSTANCE_UPDATE, update)
            .await
    }

    /// Records what the metadata service tells an instance.
    pub async fn instance_metadata(
        &self,
        ctx: &RequestContext,
        metadata: &GuestMetadata,
    ) -> Result<(), RpcError> {
        self.rpc
            .cast(
                ctx,
                &Target::topic(TOPIC),
                methods::INSTANCE_METADATA,
                metadata,
            )
            .await
    }
}
