//! RPC dispatch for the `network` topic.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::network::methods;
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::wire::network::{AllocateFixedIp, ReleaseFixedIp};
use stratus_rpc::{Handler, HandlerError, RequestContext};

use crate::manager::NetworkManager;

/// Serves the network controller's methods.
#[derive(Debug, Clone)]
pub struct NetworkService {
    manager: Arc<NetworkManager>,
}

impl NetworkService {
    /// Serves `manager`.
    pub fn new(manager: Arc<NetworkManager>) -> Self {
        Self { manager }
    }
}

#[async_trait]
impl Handler for NetworkService {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::ALLOCATE_FIXED_IP => {
                let request: AllocateFixedIp = decode_args(method, args)?;
                encode_result(&self.manager.allocate_fixed_ip(&request).await?)
            }
            methods::RELEASE_FIXED_IP => {
                let request: ReleaseFixedIp = decode_args(method, args)?;
                self.manager.release_fixed_ip(&request).await?;
                Ok(null())
            }
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
