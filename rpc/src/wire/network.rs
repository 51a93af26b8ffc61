//! Messages to the network controller.

use serde::{Deserialize, Serialize};

use super::ids::{InstanceId, MacAddress, ProjectId};

/// Ask for the instance's fixed IP (idempotent per instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateFixedIp {
    /// The instance the address is for.
    pub instance_id: InstanceId,
    /// Its project, which picks the network.
    pub project_id: ProjectId,
    /// The instance's MAC address, for the DHCP host entry.
    pub mac: MacAddress,
    /// When the caller stops waiting (milliseconds since the epoch): a
    /// request still queued then is refused, so no address is handed to a
    /// caller that already gave up and cleaned up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The address the instance must have (RunInstances' PrivateIpAddress):
    /// that one if it is free on the project's network, else a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_address: Option<std::net::Ipv4Addr>,
}

/// A fixed IP and the network it sits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    /// The instance's address.
    pub address: String,
    /// The network in CIDR form.
    pub cidr: String,
    /// The gateway address.
    pub gateway: String,
    /// The netmask in dotted form.
    pub netmask: String,
    /// The bridge the instance's interface joins.
    pub bridge: String,
    /// The network's DHCP server (instances must accept its replies).
    pub dhcp_server: String,
    /// The VLAN id, in VLAN mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// DNS servers for the guest.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// Release the instance's fixed IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFixedIp {
    /// The instance whose address goes back to the pool.
    pub instance_id: InstanceId,
}

/// Ask for a project's network, made now if the project has none yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetProjectNetwork {
    /// The project whose network is wanted.
    pub project_id: ProjectId,
}

/// A project's network: the range its instances' fixed IPs come from (the
/// CIDR of its default VPC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectNetwork {
    /// The network in CIDR form.
    pub cidr: String,
    /// The gateway address.
    pub gateway: String,
}
