//! The network controller's methods (topic `network`).

use crate::context::RequestContext;
use crate::error::RpcError;
use crate::target::Target;
use crate::wire::network::{AllocateFixedIp, FixedIp, ReleaseFixedIp};

use super::RpcClient;

/// The topic the network controller serves.
pub const TOPIC: &str = "network";

/// Method names of the network topic.
pub mod methods {
    /// Give an instance its fixed IP (idempotent).
    pub const ALLOCATE_FIXED_IP: &str = "allocate_fixed_ip";
    /// Return an instance's fixed IP to the pool.
    pub const RELEASE_FIXED_IP: &str = "release_fixed_ip";
    /// Every method, for logs and `--help`.
    pub const ALL: &[&str] = &[ALLOCATE_FIXED_IP, RELEASE_FIXED_IP];
}

/// Talks to the network controller.
#[derive(Debug, Clone)]
pub struct NetworkClient {
    rpc: RpcClient,
}

impl NetworkClient {
    /// A client over `rpc`.
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }

    /// How long its calls wait for a reply.
    pub fn timeout(&self) -> std::time::Duration {
        self.rpc.call_timeout()
    }

    /// Allocates (or returns the already allocated) fixed IP of an instance.
    pub async fn allocate_fixed_ip(
        &self,
        ctx: &RequestContext,
        request: &AllocateFixedIp,
    ) -> Result<FixedIp, RpcError> {
        self.rpc
            .call(
                ctx,
                &Target::topic(TOPIC),
                methods::ALLOCATE_FIXED_IP,
                request,
            )
            .await
    }

    /// Releases an instance's fixed IP.
    pub async fn release_fixed_ip(
        &self,
        ctx: &RequestContext,
        request: ReleaseFixedIp,
    ) -> Result<(), RpcError> {
        self.rpc
            .call(
                ctx,
                &Target::topic(TOPIC),
                methods::RELEASE_FIXED_IP,
                &request,
            )
            .await
    }
}
