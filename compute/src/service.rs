//! RPC dispatch for the `compute` topic.

use std::sync::Arc;

use async_trait::async_trait;
use stratus_host::firewall::Firewall;
use stratus_rpc::clients::ComputeApi;
use stratus_rpc::wire::compute::{
    InstanceGroups, InstanceRef, RebootInstance, RunInstance, SetHostEnabled, SourceDestCheck,
    StartInstance,
};
use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::wire::scheduler::HostReport;
use stratus_rpc::{Handled, HandlerError, RemoteError, RequestContext, Serves};

use crate::driver::DriverError;
use crate::manager::{ComputeManager, StartError};

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
    HandlerError::Permanent(RemoteError::from_error(kind, &e))
}

fn console_error(e: std::io::Error) -> HandlerError {
    let kind = if e.kind() == std::io::ErrorKind::NotFound {
        "InstanceNotFound"
    } else {
        "ConsoleError"
    };
    HandlerError::Permanent(RemoteError::from_error(kind, &e))
}

/// The answer to a change of an instance's filters: not found when the
/// host has none for it.
fn filters_changed(
    id: stratus_rpc::wire::ids::InstanceId,
    applied: Result<bool, stratus_host::CommandError>,
) -> Handled {
    match applied {
        Ok(true) => Ok(()),
        Ok(false) => Err(HandlerError::Permanent(RemoteError::new(
            "InstanceNotFound",
            format!("instance {id} has no filters on this host"),
        ))),
        Err(e) => Err(HandlerError::Permanent(RemoteError::from_error(
            "FirewallError",
            &e,
        ))),
    }
}

impl Serves for ComputeService {
    type Api = dyn ComputeApi;
}

#[async_trait]
impl ComputeApi for ComputeService {
    async fn run_instance(&self, ctx: &RequestContext, request: RunInstance) -> Handled {
        self.manager.run_instance(ctx, &request).await;
        Ok(())
    }

    async fn terminate_instance(&self, ctx: &RequestContext, instance: InstanceRef) -> Handled {
        self.manager
            .terminate_instance(ctx, instance.instance_id)
            .await;
        Ok(())
    }

    async fn remove_copy(&self, ctx: &RequestContext, instance: InstanceRef) -> Handled {
        self.manager.remove_copy(ctx, instance.instance_id).await;
        Ok(())
    }

    async fn reboot_instance(&self, ctx: &RequestContext, request: RebootInstance) -> Handled {
        self.manager
            .reboot_instance(ctx, request.instance_id, request.hard)
            .await
            .map_err(driver_error)
    }

    async fn stop_instance(&self, ctx: &RequestContext, instance: InstanceRef) -> Handled {
        let stopped = self.manager.stop_instance(ctx, instance.instance_id).await;
        stopped.map_err(driver_error)
    }

    async fn start_instance(&self, ctx: &RequestContext, request: StartInstance) -> Handled {
        match self.manager.start_instance(ctx, &request).await {
            Ok(()) => Ok(()),
            Err(StartError::Driver(e)) => Err(driver_error(e)),
            Err(e @ StartError::InsufficientCapacity { .. }) => Err(HandlerError::Permanent(
                RemoteError::from_error("InsufficientInstanceCapacity", &e),
            )),
            Err(e @ (StartError::Record { .. } | StartError::UserData { .. })) => Err(
                HandlerError::Permanent(RemoteError::from_error("StartError", &e)),
            ),
        }
    }

    async fn get_console_output(
        &self,
        _ctx: &RequestContext,
        instance: InstanceRef,
    ) -> Handled<String> {
        let id = instance.instance_id;
        self.manager.console_output(id).await.map_err(console_error)
    }

    async fn refresh_security_group(
        &self,
        _ctx: &RequestContext,
        update: SecurityGroupUpdate,
    ) -> Handled {
        self.firewall.update_group(update).await.map_err(|e| {
            // iptables may be busy or briefly failing: try again.
            HandlerError::Retryable(RemoteError::from_error("FirewallError", &e))
        })
    }

    async fn set_instance_groups(&self, _ctx: &RequestContext, request: InstanceGroups) -> Handled {
        let id = request.instance_id;
        let applied = self
            .firewall
            .set_instance_groups(id, request.security_groups)
            .await;
        filters_changed(id, applied)
    }

    async fn set_source_dest_check(
        &self,
        _ctx: &RequestContext,
        request: SourceDestCheck,
    ) -> Handled {
        let id = request.instance_id;
        let applied = self
            .firewall
            .set_source_dest_check(id, request.checked)
            .await;
        filters_changed(id, applied)
    }

    async fn set_host_enabled(
        &self,
        ctx: &RequestContext,
        request: SetHostEnabled,
    ) -> Handled<HostReport> {
        self.manager
            .set_host_enabled(ctx, &request)
            .await
            .map_err(|e| HandlerError::Permanent(RemoteError::from_error("HostStateError", &e)))
    }
}
