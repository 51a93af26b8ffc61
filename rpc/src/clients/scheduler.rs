//! The scheduler's methods (topic `scheduler`).

use crate::context::RequestContext;
use crate::error::RpcError;
use crate::target::Target;
use crate::wire::scheduler::{HostReport, HostStatus, ScheduleRunInstances};

use super::RpcClient;

/// The topic the scheduler serves.
pub const TOPIC: &str = "scheduler";

/// Method names of the scheduler topic.
pub mod methods {
    /// Place instances on hosts and cast them to the chosen workers.
    pub const RUN_INSTANCE: &str = "run_instance";
    /// A compute host's capacity report (fanout; doubles as a heartbeat).
    pub const UPDATE_HOST: &str = "update_host";
    /// Every host a scheduler knows, up or down.
    pub const LIST_HOSTS: &str = "list_hosts";
    /// Every method, for logs and `--help`.
    pub const ALL: &[&str] = &[RUN_INSTANCE, UPDATE_HOST, LIST_HOSTS];
}

/// Talks to the schedulers.
#[derive(Debug, Clone)]
pub struct SchedulerClient {
    rpc: RpcClient,
}

impl SchedulerClient {
    /// A client over `rpc`.
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }

    /// Asks a scheduler to place and start instances.
    pub async fn run_instance(
        &self,
        ctx: &RequestContext,
        request: &ScheduleRunInstances,
    ) -> Result<(), RpcError> {
        self.rpc
            .cast(ctx, &Target::topic(TOPIC), methods::RUN_INSTANCE, request)
            .await
    }

    /// Tells every scheduler about a host's capacity and usage.
    pub async fn update_host(
        &self,
        ctx: &RequestContext,
        report: &HostReport,
    ) -> Result<(), RpcError> {
        self.rpc
            .fanout_cast(ctx, TOPIC, methods::UPDATE_HOST, report)
            .await
    }

    /// Every host one scheduler knows, by name.
    pub async fn list_hosts(&self, ctx: &RequestContext) -> Result<Vec<HostStatus>, RpcError> {
        self.rpc
            .call(ctx, &Target::topic(TOPIC), methods::LIST_HOSTS, &())
            .await
    }
}
