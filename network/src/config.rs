//! The `[network]` section of the configuration.

use serde::{Deserialize, Serialize};

/// How instance networks are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagerKind {
    /// Each project's network on a bridge of its own (`flat_bridge`, then
    /// numbered on), with no VLAN.
    Flat,
    /// Each project on its own VLAN and bridge (`br<vlan>` over `vlan<vlan>`).
    Vlan,
}

/// The network controller's and host networking's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// `flat` or `vlan`.
    pub manager: ManagerKind,
    /// The IPv4 range cut into per-project networks. Compute hosts let no
    /// guest send from it (nor from `public_range`) but from its own
    /// address, even with its source/destination check off.
    pub fixed_range: String,
    /// Addresses per project network (a power of two, at least 8).
    pub network_size: u32,
    /// The first project network's bridge in flat mode; network n's is this
    /// name's trailing number plus n (br100, br101, …).
    pub flat_bridge: String,
    /// The first project's VLAN id in VLAN mode; the next project gets the next id.
    pub vlan_start: u16,
    /// The physical interface VLAN interfaces sit on, in VLAN mode.
    pub vlan_interface: String,
    /// DNS servers handed to guests; empty: the network's DHCP server address.
    pub dns: Vec<String>,
    /// Where the controller keeps networks and allocations: `sqlite://PATH`
    /// or `postgres://…`. Unset: `<state_dir>/network.sqlite`.
    pub database_url: Option<String>,
    /// Run dnsmasq for each network on the controller's host.
    pub dhcp: bool,
    /// DHCP lease time in seconds.
    pub dhcp_lease_secs: u32,
    /// Where compute hosts send guests' metadata requests (169.254.169.254:80
    /// is DNATed here): the api host's address as guests' packets can reach
    /// it. Unset: no DNAT.
    pub metadata_host: Option<std::net::Ipv4Addr>,
    /// The api service's metadata port.
    pub metadata_port: u16,
    /// Every this many seconds (and at start) the controller asks the api
    /// which instances holding addresses are gone (terminated or in error)
    /// and releases their addresses and DHCP entries, so a release lost with
    /// a crashed host or service comes back. 0: never.
    pub reconcile_interval_secs: u64,
    /// The public range (CIDR) public and Elastic IPs come from; its first
    /// host address is the outside's router and never handed out. Empty:
    /// no public addresses.
    pub public_range: String,
    /// The network host's interface toward the public range: mapped public
    /// addresses are bound there (made if missing: a dummy interface, or a
    /// bridge with no port where the kernel has no dummy driver).
    pub public_interface: String,
    /// Give every instance a public address at launch unless its request
    /// says otherwise (`NetworkInterface.N.AssociatePublicIpAddress`).
    pub public_ip_on_launch: bool,
    /// Public DNS names are `ec2-<dashed address>.<this>`.
    pub public_dns_domain: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            // Flat works on every kernel; VLAN mode needs 802.1Q support,
            // which the CI machines' kernels lack.
            manager: ManagerKind::Flat,
            fixed_range: "10.0.0.0/16".to_owned(),
            network_size: 256,
            flat_bridge: "br100".to_owned(),
            vlan_start: 100,
            vlan_interface: "eth0".to_owned(),
            dns: Vec::new(),
            database_url: None,
            dhcp: true,
            dhcp_lease_secs: 120,
            metadata_host: None,
            metadata_port: 8775,
            reconcile_interval_secs: 30,
            // OpenStack devstack's public range: private space unlikely to
            // clash with a host's own networks.
            public_range: "172.24.4.0/24".to_owned(),
            public_interface: "stratus-pub".to_owned(),
            public_ip_on_launch: true,
            public_dns_domain: "compute.stratus".to_owned(),
        }
    }
}
