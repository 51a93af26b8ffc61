//! RPC dispatch for the `compute` topic.

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::compute::methods;
use stratus_rpc::handler::not_implemented;
use stratus_rpc::{Handler, HandlerError, RequestContext};

/// Serves the compute topic's methods.
#[derive(Debug, Default)]
pub struct ComputeService;

#[async_trait]
impl Handler for ComputeService {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        method: &str,
        _args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        if methods::ALL.contains(&method) {
            return Err(not_implemented("compute", method));
        }
        Err(HandlerError::UnknownMethod(method.to_owned()))
    }
}
