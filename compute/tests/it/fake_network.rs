//! A network controller for compute's tests: hands out addresses of one
//! flat /24 on `br100` (as the real controller lays out its first network)
//! and takes them back, in memory. Compute needs nothing else of it; the
//! real controller with compute is covered by the workspace's tests/it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use stratus_rpc::clients::NetworkApi;
use stratus_rpc::wire::addresses::MapPublicAddresses;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::{
    AllocateFixedIp, FixedIp, GetProjectNetwork, ProjectNetwork, ReleaseFixedIp,
};
use stratus_rpc::{Handled, HandlerError, RequestContext, Serves};

/// The gateway (.1) and DHCP server (.2) are reserved, as are the network
/// and broadcast addresses.
const FIRST_HOST: u8 = 3;
const LAST_HOST: u8 = 254;

/// `address` on the fake's network, as the controller describes it.
pub fn fixed_ip(address: Ipv4Addr) -> FixedIp {
    FixedIp {
        address: address.to_string(),
        cidr: "10.0.0.0/24".into(),
        gateway: "10.0.0.1".into(),
        netmask: "255.255.255.0".into(),
        bridge: "br100".into(),
        dhcp_server: "10.0.0.2".into(),
        vlan: None,
        // No DNS configured: the network's DHCP server answers.
        dns: vec!["10.0.0.2".into()],
    }
}

/// Fixed IPs by instance, from 10.0.0.0/24, kept in a file as the real
/// controller keeps them in its database: a worker restarted over the same
/// state folder meets the addresses its first life left.
#[derive(Debug)]
pub struct FakeNetwork {
    file: PathBuf,
    held: Mutex<HashMap<InstanceId, Ipv4Addr>>,
}

impl FakeNetwork {
    /// The addresses recorded in `file`, if it exists yet.
    pub fn at(file: PathBuf) -> Self {
        let held = std::fs::read(&file)
            .map(|bytes| serde_json::from_slice(&bytes).expect("the fake network's file"))
            .unwrap_or_default();
        Self {
            file,
            held: Mutex::new(held),
        }
    }

    fn save(&self, held: &HashMap<InstanceId, Ipv4Addr>) {
        let json = serde_json::to_vec(held).expect("addresses as JSON");
        std::fs::write(&self.file, json).expect("the fake network's file");
    }

    /// The instance's address (the same one on every call): the one it
    /// asks for, refused as the controller refuses it when that is taken
    /// or not a host of the network.
    pub fn allocate(&self, request: &AllocateFixedIp) -> Handled<FixedIp> {
        let mut held = self.held.lock().expect("lock");
        let address = match (
            held.get(&request.instance_id).copied(),
            request.requested_address,
        ) {
            (Some(address), _) => address,
            (None, Some(wanted)) => {
                let [a, b, c, host] = wanted.octets();
                if [a, b, c] != [10, 0, 0] || !(FIRST_HOST..=LAST_HOST).contains(&host) {
                    return Err(HandlerError::permanent(
                        "FixedIpNotInNetwork",
                        format!("{wanted} is not an instance address of 10.0.0.0/24"),
                    ));
                }
                if held.values().any(|taken| *taken == wanted) {
                    return Err(HandlerError::permanent(
                        "FixedIpTaken",
                        format!(
                            "the requested private IP address {wanted} is already in use in 10.0.0.0/24"
                        ),
                    ));
                }
                held.insert(request.instance_id, wanted);
                self.save(&held);
                wanted
            }
            (None, None) => {
                let free = (FIRST_HOST..=LAST_HOST)
                    .map(|host| Ipv4Addr::new(10, 0, 0, host))
                    .find(|a| !held.values().any(|taken| taken == a))
                    .ok_or_else(|| {
                        HandlerError::permanent("NoMoreFixedIps", "10.0.0.0/24 is full")
                    })?;
                held.insert(request.instance_id, free);
                self.save(&held);
                free
            }
        };
        Ok(fixed_ip(address))
    }

    /// The instance's address, if it holds one.
    pub fn address_of(&self, id: &InstanceId) -> Option<Ipv4Addr> {
        self.held.lock().expect("lock").get(id).copied()
    }

    /// Whether the instance holds an address.
    pub fn has_address(&self, id: &InstanceId) -> bool {
        self.held.lock().expect("lock").contains_key(id)
    }
}

impl Serves for FakeNetwork {
    type Api = dyn NetworkApi;
}

#[async_trait]
impl NetworkApi for FakeNetwork {
    async fn allocate_fixed_ip(
        &self,
        _: &RequestContext,
        request: AllocateFixedIp,
    ) -> Handled<FixedIp> {
        self.allocate(&request)
    }

    async fn release_fixed_ip(&self, _: &RequestContext, request: ReleaseFixedIp) -> Handled {
        let mut held = self.held.lock().expect("lock");
        held.remove(&request.instance_id);
        self.save(&held);
        Ok(())
    }

    async fn map_public_addresses(&self, _: &RequestContext, _: MapPublicAddresses) -> Handled {
        // The worker never maps public addresses; the api does.
        Ok(())
    }

    async fn project_network(
        &self,
        _: &RequestContext,
        _: GetProjectNetwork,
    ) -> Handled<ProjectNetwork> {
        // Every project shares the fake's one network.
        let network = fixed_ip(Ipv4Addr::new(10, 0, 0, FIRST_HOST));
        Ok(ProjectNetwork {
            cidr: network.cidr,
            gateway: network.gateway,
        })
    }
}
