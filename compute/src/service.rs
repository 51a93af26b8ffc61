//! RPC dispatch for the `compute` topic.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_host::firewall::Firewall;
use stratus_rpc::clients::compute::methods;
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::wire::compute::{InstanceRef, RebootInstance, RunInstance, SetHostEnabled};
use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::{Handler, HandlerError, RemoteError, RequestContext};

use crate::driver::DriverError;
use crate::manager::ComputeManager;

/// Serves the compute topic's methods on one host.
#[derive(Debug, Clone)]
pub struct ComputeService {
    manager: Arc<ComputeManager>,
    firewall: Arc<Firewall>,
}

impl ComputeService {
    /// Serves `manager`, whose instances' chains live in `firewall`.
    pub fn new(manager: Arc<ComputeManager>, firewall: Arc<Firewall>) -> Self {
        Self { manager, firewall }
    }
}

fn driver_error(e: DriverError) -> HandlerError {
    let kind = match e {
        DriverError::NotFound(_) => "InstanceNotFound",
        DriverError::Invalid { .. } => "IncorrectInstanceState",
        _ => "HypervisorError",
    };
    HandlerError::permanent(kind, e.to_string())
}

#[async_trait]
impl Handler for ComputeService {
    async fn handle(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::RUN_INSTANCE => {
                let request: RunInstance = decode_args(method, args)?;
                self.manager.run_instance(ctx, &request).await;
                Ok(null())
            }
            methods::TERMINATE_INSTANCE => {
                let request: InstanceRef = decode_args(method, args)?;
                self.manager
                    .terminate_instance(ctx, request.instance_id)
                    .await;
                Ok(null())
            }
            methods::REMOVE_COPY => {
                let request: InstanceRef = decode_args(method, args)?;
                self.manager.remove_copy(ctx, request.instance_id).await;
                Ok(null())
            }
            methods::REBOOT_INSTANCE => {
                let request: RebootInstance = decode_args(method, args)?;
                self.manager
                    .reboot_instance(ctx, request.instance_id, request.hard)
                    .await
                    .map_err(driver_error)?;
                Ok(null())
            }
            methods::STOP_INSTANCE => {
                let request: InstanceRef = decode_args(method, args)?;
                self.manager
                    .stop_instance(ctx, request.instance_id)
                    .await
                    .map_err(driver_error)?;
                Ok(null())
            }
            methods::START_INSTANCE => {
                let request: InstanceRef = decode_args(method, args)?;
                self.manager
                    .start_instance(ctx, request.instance_id)
                    .await
                    .map_err(driver_error)?;
                Ok(null())
            }
            methods::GET_CONSOLE_OUTPUT => {
                let request: InstanceRef = decode_args(method, args)?;
                let output = self
                    .manager
                    .console_output(request.instance_id)
                    .await
                    .map_err(|e| {
                        let kind = if e.kind() == std::io::ErrorKind::NotFound {
                            "InstanceNotFound"
                        } else {
                            "ConsoleError"
                        };
                        HandlerError::permanent(kind, e.to_string())
                    })?;
                encode_result(&output)
            }
            methods::REFRESH_SECURITY_GROUP => {
                let update: SecurityGroupUpdate = decode_args(method, args)?;
                self.firewall.update_group(update).await.map_err(|e| {
                    // iptables may be busy or briefly failing: try again.
                    HandlerError::Retryable(RemoteError::new("FirewallError", e.to_string()))
                })?;
                Ok(null())
            }
            methods::SET_HOST_ENABLED => {
                let request: SetHostEnabled = decode_args(method, args)?;
                let report = self
                    .manager
                    .set_host_enabled(ctx, &request)
                    .await
                    .map_err(|e| HandlerError::permanent("HostStateError", e.to_string()))?;
                encode_result(&report)
            }
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
