//! The network controller: fixed IPs for instances, DHCP that hands them
//! out, and the NAT that maps public addresses to them.

use std::path::Path;
use std::sync::Arc;

use stratus_rpc::error::error_chain;
use stratus_rpc::wire::addresses::{MapPublicAddresses, PublicAddresses};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::{
    AllocateFixedIp, FixedIp, GetProjectNetwork, ProjectNetwork, ReleaseFixedIp,
};
use tracing::{debug, info, instrument, warn};

use crate::config::NetworkConfig;
use crate::dhcp::Dhcp;
use crate::error::NetworkError;
use crate::ipam::Ipam;
use crate::ipam::layout::Layout;
use crate::ipam::store::{AllocationRow, NetworkRow, Store};
use crate::public::PublicAddressing;
use stratus_host::HostCommands;
use stratus_host::iptables::Iptables;
use stratus_host::locks::KeyedLocks;
use stratus_host::public::PublicNat;

/// Owns networks and fixed IP allocations.
#[derive(Debug)]
pub struct NetworkManager {
    ipam: Ipam,
    dhcp: Option<Dhcp>,
    dns: Vec<String>,
    /// One per network: its DHCP entries are read and written in one turn,
    /// so an older read never overwrites a newer write.
    dhcp_turns: KeyedLocks<i64>,
    /// The public-address mappings; none when `[network] public_range` is
    /// empty.
    public: Option<PublicAddressing>,
}

impl NetworkManager {
    /// Opens the controller's database (`database_url`, else a SQLite file in
    /// `state_dir`) and, when `dhcp` is on, runs dnsmasq through `host`.
    /// With a public range, the public-address mappings of the database are
    /// applied through `host` before this returns (the iptables lock file in
    /// `state_dir/locks`, as the compute worker's), so a restart never
    /// leaves an address unmapped while the api is out of reach.
    pub async fn start(
        config: &NetworkConfig,
        state_dir: &Path,
        host: Arc<dyn HostCommands>,
    ) -> Result<Self, NetworkError> {
        let layout = Layout::new(config)?;
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(state_dir).map_err(|source| {
                    crate::dhcp::DhcpError::Files {
                        path: state_dir.to_owned(),
                        source,
                    }
                })?;
                format!(
                    "sqlite://{}?mode=rwc",
                    state_dir.join("network.sqlite").display()
                )
            }
        };
        let public_range = match config.public_range.trim() {
            "" => None,
            range => Some(range.parse::<ipnet::Ipv4Net>().map_err(|source| {
                NetworkError::PublicRange {
                    range: range.to_owned(),
                    source,
                }
            })?),
        };
        let store = Store::connect(&url).await?;
        let public = match public_range {
            Some(range) => {
                let nat = PublicNat::new(
                    host.clone(),
                    Iptables::new(host.clone(), state_dir.join("locks")),
                    range,
                    &config.public_interface,
                )
                .map_err(NetworkError::PublicInterface)?;
                let public = PublicAddressing::open(&store, nat).await?;
                public.apply().await?;
                Some(public)
            }
            None => None,
        };
        let dhcp = config.dhcp.then(|| {
            Dhcp::new(
                host,
                state_dir.join("networks"),
                config.dhcp_lease_secs,
                config.dns.clone(),
                config.vlan_interface.clone(),
            )
        });
        Ok(Self {
            ipam: Ipam::new(store, layout),
            dhcp,
            dns: config.dns.clone(),
            dhcp_turns: KeyedLocks::new(),
            public,
        })
    }

    /// The public-address replica and its host side; none when the public
    /// range is off.
    pub fn public(&self) -> Option<&PublicAddressing> {
        self.public.as_ref()
    }

    /// The address management underneath.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The instance's fixed IP (the same one on every call), served by DHCP.
    #[instrument(skip_all, fields(instance_id = %request.instance_id, project_id = %request.project_id))]
    pub async fn allocate_fixed_ip(
        &self,
        request: &AllocateFixedIp,
    ) -> Result<FixedIp, NetworkError> {
        let hostname = request.instance_id.ec2_id();
        let row = self
            .ipam
            .allocate_before(
                &request.instance_id.to_string(),
                request.project_id.as_str(),
                request.mac.as_str(),
                &hostname,
                request.deadline_ms,
                request.requested_address,
            )
            .await?;
        self.sync_dhcp(&row).await?;
        info!(address = %row.address, bridge = %row.network.bridge, "fixed IP allocated");
        self.fixed_ip_changed(&request.instance_id).await;
        Ok(self.fixed_ip(&row))
    }

    /// The project's network (made now if it has none): what the api shows
    /// as the project's default VPC.
    #[instrument(skip_all, fields(project_id = %request.project_id))]
    pub async fn project_network(
        &self,
        request: &GetProjectNetwork,
    ) -> Result<ProjectNetwork, NetworkError> {
        let network = self.ipam.network_for(request.project_id.as_str()).await?;
        debug!(cidr = %network.cidr, "project network");
        Ok(ProjectNetwork {
            cidr: network.cidr,
            gateway: network.gateway,
        })
    }

    /// Records changes to the public-address mappings and applies them
    /// (one atomic NAT replace); ignored when the public range is off.
    #[instrument(skip_all, fields(set = request.set.len(), clear = request.clear.len(), sequence = request.sequence))]
    pub async fn map_public_addresses(
        &self,
        request: &MapPublicAddresses,
    ) -> Result<(), NetworkError> {
        let Some(public) = &self.public else {
            debug!("public addresses are off here; change ignored");
            return Ok(());
        };
        public.push(request).await?;
        info!("public address mappings applied");
        Ok(())
    }

    /// Replaces the mappings with the api's full listing (but for changes
    /// pushed after it was taken) and applies them; false when the public
    /// range is off.
    #[instrument(skip_all, fields(mappings = listing.mappings.len(), as_of = listing.as_of))]
    pub async fn replace_public_addresses(
        &self,
        listing: &PublicAddresses,
    ) -> Result<bool, NetworkError> {
        let Some(public) = &self.public else {
            return Ok(false);
        };
        public.replace(listing).await?;
        Ok(true)
    }

    /// Re-applies the public mappings when `instance_id` has one: its fixed
    /// IP came or went. Not fatal to the allocation or release: the next
    /// reconcile applies again.
    async fn fixed_ip_changed(&self, instance_id: &InstanceId) {
        let Some(public) = &self.public else { return };
        let result = match public.is_mapped(instance_id).await {
            Ok(true) => public.apply().await,
            Ok(false) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            warn!(instance_id = %instance_id, error = %error_chain(&e), "re-applying public addresses failed; the next reconcile tries again");
        }
    }

    /// Frees the instance's fixed IP and its DHCP entry; nothing to free is fine.
    #[instrument(skip_all, fields(instance_id = %request.instance_id))]
    pub async fn release_fixed_ip(&self, request: &ReleaseFixedIp) -> Result<(), NetworkError> {
        if let Some(row) = self.ipam.release(&request.instance_id.to_string()).await? {
            self.sync_dhcp(&row).await?;
            info!(address = %row.address, "fixed IP released");
            // The mapping stays in the replica, unrendered, until the api
            // clears it: a rescheduled instance gets it back with its next
            // fixed IP.
            self.fixed_ip_changed(&request.instance_id).await;
        }
        Ok(())
    }

    /// Rewrites every network's DHCP host entries from the allocations
    /// (dnsmasq told only where they changed): a controller killed between
    /// an allocation or release and its DHCP update left them behind.
    pub async fn resync_dhcp(&self) -> Result<(), NetworkError> {
        let Some(dhcp) = &self.dhcp else {
            return Ok(());
        };
        for network in self.ipam.store().networks().await? {
            self.sync_network(dhcp, &network).await?;
        }
        Ok(())
    }

    /// Stops the dnsmasq processes this controller started.
    pub async fn stop_dhcp(&self) {
        if let Some(dhcp) = &self.dhcp {
            dhcp.stop_all().await;
        }
    }

    async fn sync_dhcp(&self, row: &AllocationRow) -> Result<(), NetworkError> {
        if let Some(dhcp) = &self.dhcp {
            self.sync_network(dhcp, &row.network).await?;
        }
        Ok(())
    }

    /// Writes the network's DHCP entries as the allocations stand now.
    async fn sync_network(&self, dhcp: &Dhcp, network: &NetworkRow) -> Result<(), NetworkError> {
        let _turn = self.dhcp_turns.lock(network.slot).await;
        let hosts = self.ipam.store().dhcp_hosts(network.slot).await?;
        dhcp.update(network, &hosts).await?;
        Ok(())
    }

    fn fixed_ip(&self, row: &AllocationRow) -> FixedIp {
        let net = &row.network;
        let netmask = net
            .cidr
            .parse::<ipnet::Ipv4Net>()
            .map(|n| n.netmask().to_string())
            .unwrap_or_default();
        FixedIp {
            address: row.address.clone(),
            cidr: net.cidr.clone(),
            gateway: net.gateway.clone(),
            netmask,
            bridge: net.bridge.clone(),
            vlan: net.vlan.and_then(|v| u16::try_from(v).ok()),
            dhcp_server: net.dhcp_server.clone(),
            dns: if self.dns.is_empty() {
                vec![net.dhcp_server.clone()]
            } else {
                self.dns.clone()
            },
        }
    }
}
