//! A network controller for compute's tests: hands out addresses of one
//! flat /24 on `br100` (as the real controller lays out its first network)
//! and takes them back, in memory. Compute needs nothing else of it; the
//! real controller with compute is covered by the workspace's tests/it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::network::methods;
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::{AllocateFixedIp, FixedIp, ReleaseFixedIp};
use stratus_rpc::{Handler, HandlerError, RequestContext};

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

/// Fixed IPs by instance, from 10.0.0.0/24.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    held: Mutex<HashMap<InstanceId, Ipv4Addr>>,
}

impl FakeNetwork {
    /// The instance's address (the same one on every call).
    pub async fn allocate_fixed_ip(
        &self,
        request: &AllocateFixedIp,
    ) -> Result<FixedIp, HandlerError> {
        let mut held = self.held.lock().expect("lock");
        let address = match held.get(&request.instance_id) {
            Some(address) => *address,
            None => {
                let free = (FIRST_HOST..=LAST_HOST)
                    .map(|host| Ipv4Addr::new(10, 0, 0, host))
                    .find(|a| !held.values().any(|taken| taken == a))
                    .ok_or_else(|| {
                        HandlerError::permanent("NoMoreFixedIps", "10.0.0.0/24 is full")
                    })?;
                held.insert(request.instance_id, free);
                free
            }
        };
        Ok(fixed_ip(address))
    }

    /// Whether the instance holds an address.
    pub fn has_address(&self, id: &InstanceId) -> bool {
        self.held.lock().expect("lock").contains_key(id)
    }
}

#[async_trait]
impl Handler for FakeNetwork {
    async fn handle(
        &self,
        _: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        match method {
            methods::ALLOCATE_FIXED_IP => {
                encode_result(&self.allocate_fixed_ip(&decode_args(method, args)?).await?)
            }
            methods::RELEASE_FIXED_IP => {
                let ReleaseFixedIp { instance_id } = decode_args(method, args)?;
                self.held.lock().expect("lock").remove(&instance_id);
                Ok(null())
            }
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
