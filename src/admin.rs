//! Operator commands that reach running services over the broker.

use std::time::Duration;

use stratus_rpc::clients::ComputeClient;
use stratus_rpc::config::Backend;
use stratus_rpc::wire::compute::SetHostEnabled;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::wire::scheduler::HostReport;
use stratus_rpc::{RequestContext, RpcClient, RpcError};

use crate::config::Config;

/// How long an operator waits for a host that does not answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// An operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The services run on the in-process bus of another process.
    #[error(
        "[rpc] backend is \"memory\": the in-process bus of a running all-in-one cannot be reached from another process; point [rpc] at the broker the services use"
    )]
    InProcessBus,
    /// The host name is not one.
    #[error("{0:?} is not a host name: {1}")]
    BadHost(String, String),
    /// The host did not answer or refused.
    #[error("compute host {host}: {source}")]
    Host {
        /// The host.
        host: HostName,
        /// What went wrong.
        #[source]
        source: RpcError,
    },
    /// The broker could not be reached.
    #[error("connecting to the broker: {0}")]
    Connect(#[source] RpcError),
}

/// Asks `host`'s compute worker to stop or resume taking new instances;
/// returns the report it sent the schedulers.
pub async fn set_host_enabled(
    config: &Config,
    host: &str,
    enabled: bool,
    reason: Option<String>,
) -> Result<HostReport, AdminError> {
    if config.rpc.backend == Backend::Memory {
        return Err(AdminError::InProcessBus);
    }
    let host: HostName = host
        .parse()
        .map_err(|e: stratus_rpc::wire::ids::InvalidId| {
            AdminError::BadHost(host.to_owned(), e.to_string())
        })?;
    let transport = stratus_rpc::transport::connect(&config.rpc, "stratus-admin")
        .await
        .map_err(AdminError::Connect)?;
    let compute = ComputeClient::new(RpcClient::new(transport.clone(), ADMIN_TIMEOUT));
    let mut ctx = RequestContext::system();
    ctx.is_admin = true;
    let answer = compute
        .set_host_enabled(&ctx, &host, &SetHostEnabled { enabled, reason })
        .await
        .map_err(|source| AdminError::Host {
            host: host.clone(),
            source,
        });
    transport.close().await;
    answer
}
