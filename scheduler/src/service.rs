//! RPC dispatch for the `scheduler` topic.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::scheduler::methods;
use stratus_rpc::handler::{decode_args, not_implemented, null};
use stratus_rpc::wire::scheduler::HostReport;
use stratus_rpc::{Handler, HandlerError, RequestContext};
use tracing::debug;

use crate::config::SchedulerConfig;
use crate::host_state::HostStates;

/// Serves the scheduler's methods.
#[derive(Debug)]
pub struct SchedulerService {
    hosts: HostStates,
}

impl SchedulerService {
    /// A scheduler with no hosts known yet.
    pub fn new(config: &SchedulerConfig) -> Self {
        Self {
            hosts: HostStates::new(Duration::from_secs(config.service_down_time_secs)),
        }
    }

    /// The hosts currently up.
    pub fn up_hosts(&self) -> Vec<HostReport> {
        self.hosts.up_hosts(Instant::now())
    }
}

#[async_trait]
impl Handler for SchedulerService {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::UPDATE_HOST => {
                let report: HostReport = decode_args(method, args)?;
                debug!(host = %report.host, "host report");
                self.hosts.update(report, Instant::now());
                Ok(null())
            }
            methods::RUN_INSTANCE => Err(not_implemented("the scheduler", method)),
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
