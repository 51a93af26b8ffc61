//! RPC dispatch for the `compute` topic.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_network::firewall::Firewall;
use stratus_rpc::clients::compute::methods;
use stratus_rpc::handler::{decode_args, not_implemented, null};
use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::{Handler, HandlerError, RemoteError, RequestContext};

/// Serves the compute topic's methods on one host.
#[derive(Debug, Clone)]
pub struct ComputeService {
    firewall: Arc<Firewall>,
}

impl ComputeService {
    /// A worker whose instances' chains live in `firewall`.
    pub fn new(firewall: Arc<Firewall>) -> Self {
        Self { firewall }
    }
}

#[async_trait]
impl Handler for ComputeService {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::REFRESH_SECURITY_GROUP => {
                let update: SecurityGroupUpdate = decode_args(method, args)?;
                self.firewall.update_group(update).await.map_err(|e| {
                    // iptables may be busy or briefly failing: try again.
                    HandlerError::Retryable(RemoteError::new("FirewallError", e.to_string()))
                })?;
                Ok(null())
            }
            m if methods::ALL.contains(&m) => Err(not_implemented("compute", m)),
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
