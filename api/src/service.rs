//! RPC dispatch for the `conductor` topic.

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::conductor::methods;
use stratus_rpc::handler::{decode_args, null};
use stratus_rpc::{Handler, HandlerError, RemoteError, RequestContext};

use crate::conductor::Conductor;

/// Serves the conductor's methods.
#[derive(Debug)]
pub struct ConductorService {
    conductor: Conductor,
}

impl ConductorService {
    /// Serves `conductor`.
    pub fn new(conductor: Conductor) -> Self {
        Self { conductor }
    }
}

fn retry(e: crate::db::DbError) -> HandlerError {
    // The database may be briefly unreachable: the report is kept and redelivered.
    HandlerError::Retryable(RemoteError::new("DatabaseError", e.to_string()))
}

#[async_trait]
impl Handler for ConductorService {
    async fn handle(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::INSTANCE_UPDATE => {
                self.conductor
                    .instance_update(ctx, &decode_args(method, args)?)
                    .await
                    .map_err(retry)?;
                Ok(null())
            }
            methods::INSTANCE_METADATA => {
                self.conductor
                    .instance_metadata(ctx, &decode_args(method, args)?)
                    .await
                    .map_err(retry)?;
                Ok(null())
            }
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
