//! The network crate's errors, and their conversion to RPC errors.

use stratus_rpc::HandlerError;

use crate::dhcp::DhcpError;
use crate::ipam::layout::LayoutError;
use crate::ipam::store::StoreError;
use stratus_host::CommandError;
use stratus_rpc::error::error_chain;

/// Kinds of remote error the network controller raises.
pub mod kinds {
    /// The project's network has no free address (EC2:
    /// `InsufficientFreeAddressesInSubnet`).
    pub const NO_MORE_FIXED_IPS: &str = "NoMoreFixedIps";
    /// Every network slot of the fixed range is taken.
    pub const NO_MORE_NETWORKS: &str = "NoMoreNetworks";
    /// The fixed IP asked for is held by another instance (EC2:
    /// `InvalidIPAddress.InUse`).
    pub const FIXED_IP_TAKEN: &str = "FixedIpTaken";
    /// The fixed IP asked for is not an instance address of the project's
    /// network (EC2: `InvalidParameterValue`).
    pub const FIXED_IP_NOT_IN_NETWORK: &str = "FixedIpNotInNetwork";
    /// Anything else went wrong in the controller.
    pub const NETWORK_ERROR: &str = "NetworkError";
}

/// What the network controller and host networking can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No free address left.
    #[error("no free fixed IP in {cidr} (project {project_id})")]
    NoMoreFixedIps {
        /// The full network.
        cidr: String,
        /// Its project.
        project_id: String,
    },
    /// No free network slot left.
    #[error("all {networks} networks of the fixed range are taken")]
    NoMoreNetworks {
        /// How many networks the range holds.
        networks: u32,
    },
    /// The fixed IP asked for is another instance's.
    #[error("the requested private IP address {address} is already in use in {cidr}")]
    FixedIpTaken {
        /// The address asked for.
        address: String,
        /// The project's network.
        cidr: String,
    },
    /// The fixed IP asked for is outside the network, or one it keeps for
    /// itself (network, gateway, DHCP server, broadcast).
    #[error(
        "the requested private IP address {address} is not an address instances may have in {cidr} (outside it, or its network, gateway, DHCP or broadcast address)"
    )]
    FixedIpNotInNetwork {
        /// The address asked for.
        address: String,
        /// The project's network.
        cidr: String,
    },
    /// The caller's deadline passed before the address could be picked.
    #[error("allocation for {instance_id} came {late_ms} ms after its caller stopped waiting")]
    Expired {
        /// The instance.
        instance_id: String,
        /// How late.
        late_ms: u64,
    },
    /// Lost every race for an address; the database is unusually busy.
    #[error("could not allocate for {instance_id}: too much contention")]
    Contention {
        /// The instance that got nothing.
        instance_id: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured layout is unusable.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// DHCP could not be updated.
    #[error(transparent)]
    Dhcp(#[from] DhcpError),
    /// `[network] public_range` is not a CIDR.
    #[error("[network] public_range {range:?} is not an IPv4 CIDR")]
    PublicRange {
        /// The configured value.
        range: String,
        /// Why it does not parse.
        #[source]
        source: ipnet::AddrParseError,
    },
    /// `[network] public_interface` is not a usable interface name.
    #[error("[network] public_interface")]
    PublicInterface(#[source] CommandError),
    /// A host command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<NetworkError> for HandlerError {
    fn from(e: NetworkError) -> Self {
        let kind = match &e {
            NetworkError::NoMoreFixedIps { .. } => kinds::NO_MORE_FIXED_IPS,
            NetworkError::NoMoreNetworks { .. } => kinds::NO_MORE_NETWORKS,
            NetworkError::FixedIpTaken { .. } => kinds::FIXED_IP_TAKEN,
            NetworkError::FixedIpNotInNetwork { .. } => kinds::FIXED_IP_NOT_IN_NETWORK,
            _ => kinds::NETWORK_ERROR,
        };
        HandlerError::permanent(kind, error_chain(&e))
    }
}
