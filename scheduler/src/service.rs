//! RPC dispatch for the `scheduler` topic.

use async_trait::async_trait;
use stratus_rpc::clients::SchedulerApi;
use stratus_rpc::wire::scheduler::{HostReport, HostStatus, ScheduleRunInstances};
use stratus_rpc::{Handled, HandlerError, RemoteError, RequestContext, RpcClient, Serves};

use crate::config::SchedulerConfig;
use crate::manager::SchedulerManager;
use crate::placer::Placer;

/// Serves the scheduler's methods.
#[derive(Debug)]
pub struct SchedulerService {
    manager: SchedulerManager,
}

impl SchedulerService {
    /// A scheduler with no hosts known yet, casting over `rpc`.
    pub fn new(config: &SchedulerConfig, rpc: RpcClient) -> Self {
        Self {
            manager: SchedulerManager::new(config, rpc),
        }
    }

    /// The placement state.
    pub fn placer(&self) -> &Placer {
        self.manager.placer()
    }
}

impl Serves for SchedulerService {
    type Api = dyn SchedulerApi;
}

#[async_trait]
impl SchedulerApi for SchedulerService {
    async fn run_instance(&self, ctx: &RequestContext, request: ScheduleRunInstances) -> Handled {
        self.manager
            .run_instance(ctx, request)
            .await
            .map_err(|e| HandlerError::Retryable(RemoteError::from_error("HostUnreachable", &e)))
    }

    async fn update_host(&self, _ctx: &RequestContext, report: HostReport) -> Handled {
        self.manager.update_host(report);
        Ok(())
    }

    async fn list_hosts(&self, _ctx: &RequestContext) -> Handled<Vec<HostStatus>> {
        Ok(self.manager.list_hosts())
    }
}
