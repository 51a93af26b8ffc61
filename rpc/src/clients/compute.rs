//! The compute workers' methods (topic `compute`, `compute.<host>`).

use crate::context::RequestContext;
use crate::error::RpcError;
use crate::target::Target;
use crate::wire::compute::{InstanceRef, RebootInstance, RunInstance, SetHostEnabled};
use crate::wire::firewall::SecurityGroupUpdate;
use crate::wire::ids::HostName;
use crate::wire::scheduler::HostReport;

use super::RpcClient;

/// The topic compute workers serve.
pub const TOPIC: &str = "compute";

/// Method names of the compute topic.
pub mod methods {
    /// Build and boot an instance.
    pub const RUN_INSTANCE: &str = "run_instance";
    /// Destroy an instance and everything it holds.
    pub const TERMINATE_INSTANCE: &str = "terminate_instance";
    /// Remove this host's duplicate copy of an instance another host runs:
    /// everything but the address, which the two copies share.
    pub const REMOVE_COPY: &str = "remove_copy";
    /// Reboot an instance (hard or soft).
    pub const REBOOT_INSTANCE: &str = "reboot_instance";
    /// Stop an instance, keeping its disk.
    pub const STOP_INSTANCE: &str = "stop_instance";
    /// Start a stopped instance.
    pub const START_INSTANCE: &str = "start_instance";
    /// The tail of an instance's console log.
    pub const GET_CONSOLE_OUTPUT: &str = "get_console_output";
    /// A security group's rules or members changed (fanout to every host).
    pub const REFRESH_SECURITY_GROUP: &str = "refresh_security_group";
    /// Stop or resume taking new instances (`stratus service disable|enable`).
    pub const SET_HOST_ENABLED: &str = "set_host_enabled";
    /// Every method, for logs and `--help`.
    pub const ALL: &[&str] = &[
        RUN_INSTANCE,
        TERMINATE_INSTANCE,
        REMOVE_COPY,
        REBOOT_INSTANCE,
        STOP_INSTANCE,
        START_INSTANCE,
        GET_CONSOLE_OUTPUT,
        REFRESH_SECURITY_GROUP,
        SET_HOST_ENABLED,
    ];
}

/// Talks to compute workers.
#[derive(Debug, Clone)]
pub struct ComputeClient {
    rpc: RpcClient,
}

impl ComputeClient {
    /// A client over `rpc`.
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }

    /// Asks `host` to build and boot an instance.
    pub async fn run_instance(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        request: &RunInstance,
    ) -> Result<(), RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .cast(ctx, &target, methods::RUN_INSTANCE, request)
            .await
    }

    /// Asks `host` to terminate an instance.
    pub async fn terminate_instance(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        instance: InstanceRef,
    ) -> Result<(), RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .cast(ctx, &target, methods::TERMINATE_INSTANCE, &instance)
            .await
    }

    /// Asks `host` to remove its duplicate copy of an instance.
    pub async fn remove_copy(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        instance: InstanceRef,
    ) -> Result<(), RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .cast(ctx, &target, methods::REMOVE_COPY, &instance)
            .await
    }

    /// Asks `host` to reboot an instance.
    pub async fn reboot_instance(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        request: RebootInstance,
    ) -> Result<(), RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .cast(ctx, &target, methods::REBOOT_INSTANCE, &request)
            .await
    }

    /// Asks `host` to stop an instance.
    pub async fn stop_instance(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        instance: InstanceRef,
    ) -> Result<(), RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .cast(ctx, &target, methods::STOP_INSTANCE, &instance)
            .await
    }

    /// Asks `host` to start a stopped instance.
    pub async fn start_instance(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        instance: InstanceRef,
    ) -> Result<(), RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .cast(ctx, &target, methods::START_INSTANCE, &instance)
            .await
    }

    /// Fetches the tail of an instance's console log from `host`.
    pub async fn get_console_output(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        instance: InstanceRef,
    ) -> Result<String, RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .call(ctx, &target, methods::GET_CONSOLE_OUTPUT, &instance)
            .await
    }

    /// Tells every compute host a security group changed, so each re-applies
    /// the chains of its instances in (or allowed by) the group.
    pub async fn refresh_security_group(
        &self,
        ctx: &RequestContext,
        update: &SecurityGroupUpdate,
    ) -> Result<(), RpcError> {
        self.rpc
            .fanout_cast(ctx, TOPIC, methods::REFRESH_SECURITY_GROUP, update)
            .await
    }

    /// Disables or enables `host` for new instances; answers with the report
    /// the host sent the schedulers right after.
    pub async fn set_host_enabled(
        &self,
        ctx: &RequestContext,
        host: &HostName,
        request: &SetHostEnabled,
    ) -> Result<HostReport, RpcError> {
        let target = Target::host(TOPIC, host.clone());
        self.rpc
            .call(ctx, &target, methods::SET_HOST_ENABLED, request)
            .await
    }
}
