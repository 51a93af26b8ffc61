//! Public addresses: the api owns them (allocation, association, quotas);
//! the network host maps each associated one to its instance's fixed IP.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::ids::InstanceId;

/// One public address and the instance it leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicMapping {
    /// The public address.
    pub address: Ipv4Addr,
    /// The instance whose fixed IP it is translated to.
    pub instance_id: InstanceId,
}

/// Changes to the network host's mappings, applied together in one
/// atomic table replace (a moved address is one entry of `set`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapPublicAddresses {
    /// Addresses to map (or re-map) to an instance.
    #[serde(default)]
    pub set: Vec<PublicMapping>,
    /// Addresses to map to nothing.
    #[serde(default)]
    pub clear: Vec<Ipv4Addr>,
    /// When the api decided this ([`super::conductor::next_sequence`]): a
    /// full listing read before it must not undo it.
    pub sequence: u64,
}

/// Asks the conductor for every associated public address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAddressesQuery {}

/// Every associated public address, as the api's tables held them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAddresses {
    /// The mappings.
    pub mappings: Vec<PublicMapping>,
    /// A sequence taken before the read: changes pushed with a later
    /// sequence are newer than this listing.
    pub as_of: u64,
}

/// The outside's router on the public range: its first host address, never
/// handed out (the all-in-one puts it on the host's end of the link).
pub fn public_gateway(range: &Ipv4Net) -> Option<Ipv4Addr> {
    range.hosts().next()
}

/// The addresses of `range` that can be allocated: every host address but
/// the gateway, in order.
pub fn public_pool(range: &Ipv4Net) -> impl Iterator<Item = Ipv4Addr> + use<> {
    range.hosts().skip(1)
}

/// The public DNS name of `address` under `domain`, as EC2 spells them
/// (`ec2-203-0-113-25.<domain>`).
pub fn public_dns_name(address: Ipv4Addr, domain: &str) -> String {
    let dashed = address.to_string().replace('.', "-");
    format!("ec2-{dashed}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_host_and_never_in_the_pool() {
        let range: Ipv4Net = "172.24.4.0/24".parse().expect("range");
        assert_eq!(public_gateway(&range), Some(Ipv4Addr::new(172, 24, 4, 1)));
        let pool: Vec<Ipv4Addr> = public_pool(&range).collect();
        assert_eq!(pool.first(), Some(&Ipv4Addr::new(172, 24, 4, 2)));
        assert_eq!(pool.last(), Some(&Ipv4Addr::new(172, 24, 4, 254)));
        assert_eq!(pool.len(), 253);
    }

    #[test]
    fn dns_names_dash_the_address() {
        assert_eq!(
            public_dns_name(Ipv4Addr::new(172, 24, 4, 10), "compute.stratus"),
            "ec2-172-24-4-10.compute.stratus"
        );
    }
}
