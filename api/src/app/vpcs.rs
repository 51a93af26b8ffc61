//! Default VPCs: each project has one, and it is the project's network on
//! the network controller. Its ids are derived (`ec2::ids`), its CIDR is
//! asked of the controller once and cached in the api's tables. Each default
//! subnet (one per availability zone) has the VPC's CIDR: fixed IPs are not
//! cut by zone, a documented deviation from EC2.

use std::time::Duration;

use stratus_rpc::wire::network::GetProjectNetwork;
use stratus_rpc::{RequestContext, RpcError};

use crate::db::DbError;
use crate::db::vpcs::ProjectNetworkRow;
use crate::ec2::{Cloud, ids};

/// The longest a describe waits for the network host on its first ask.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the default VPC could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum VpcError {
    /// The project id cannot name a network.
    #[error("project {0:?} cannot name a network")]
    BadProject(String),
    /// The network host did not answer the first ask for the project's network.
    #[error("asking the network host for project {project}'s network")]
    Network {
        /// The project.
        project: String,
        /// The call's failure.
        #[source]
        source: RpcError,
    },
    /// The network host did not answer in time.
    #[error("the network host did not answer for project {0}'s network in time")]
    TimedOut(String),
    /// The tables failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A project's default VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultVpc {
    /// `vpc-…`, derived from the project.
    pub vpc_id: String,
    /// The project's network.
    pub cidr: String,
    /// The network's gateway (no instance's address).
    pub gateway: String,
    /// Its 12-digit account id (`ownerId`).
    pub owner_id: String,
}

impl DefaultVpc {
    /// Instance addresses in the network: all but the network and
    /// broadcast addresses, the gateway and the DHCP server.
    pub fn instance_addresses(&self) -> u64 {
        self.cidr
            .parse::<ipnet::Ipv4Net>()
            .map(|n| (1u64 << (32 - u32::from(n.prefix_len()))).saturating_sub(4))
            .unwrap_or(0)
    }
}

/// A default subnet: one per availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultSubnet {
    /// `subnet-…`, derived from the project and zone.
    pub subnet_id: String,
    /// Its zone.
    pub zone: String,
}

/// The project's default subnets, one per zone of `zones`.
pub fn default_subnets(project_id: &str, zones: &[String]) -> Vec<DefaultSubnet> {
    zones
        .iter()
        .map(|zone| DefaultSubnet {
            subnet_id: ids::default_subnet_id(project_id, zone),
            zone: zone.clone(),
        })
        .collect()
}

/// The project's default VPC: its network from the cache, or asked of the
/// network host (which makes it if the project has none yet) and cached.
pub async fn default_vpc(
    cloud: &Cloud,
    ctx: &RequestContext,
    project_id: &str,
) -> Result<DefaultVpc, VpcError> {
    let vpc = |cidr: String, gateway: String| DefaultVpc {
        vpc_id: ids::default_vpc_id(project_id),
        cidr,
        gateway,
        owner_id: ids::account_id(project_id),
    };
    if let Some(cached) = cloud.db.project_network(project_id).await? {
        return Ok(vpc(cached.cidr, cached.gateway));
    }
    let request = GetProjectNetwork {
        project_id: project_id
            .parse()
            .map_err(|_| VpcError::BadProject(project_id.to_owned()))?,
    };
    let answer = tokio::time::timeout(ASK_TIMEOUT, cloud.network.project_network(ctx, &request))
        .await
        .map_err(|_| VpcError::TimedOut(project_id.to_owned()))?
        .map_err(|source| VpcError::Network {
            project: project_id.to_owned(),
            source,
        })?;
    cloud
        .db
        .cache_project_network(&ProjectNetworkRow {
            project_id: project_id.to_owned(),
            cidr: answer.cidr.clone(),
            gateway: answer.gateway.clone(),
        })
        .await?;
    Ok(vpc(answer.cidr, answer.gateway))
}
