//! RPC dispatch for the `network` topic.

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::network::methods;
use stratus_rpc::handler::not_implemented;
use stratus_rpc::{Handler, HandlerError, RequestContext};

/// Serves the network topic's methods.
#[derive(Debug, Default)]
pub struct NetworkService;

#[async_trait]
impl Handler for NetworkService {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        method: &str,
        _args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        if methods::ALL.contains(&method) {
            return Err(not_implemented("network", method));
        }
        Err(HandlerError::UnknownMethod(method.to_owned()))
    }
}
