//! How the fixed range is cut into project networks: slot `n` is the n-th
//! block of `network_size` addresses, with its gateway, DHCP server, VLAN and
//! bridge all derived from `n`. Pure arithmetic, no state.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::{ManagerKind, NetworkConfig};

/// The fixed range and network size do not make a usable layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// `fixed_range` is not a CIDR.
    #[error("network layout: fixed_range {value:?} is not a CIDR")]
    Range {
        /// The setting as given.
        value: String,
        /// The parse error.
        #[source]
        source: ipnet::AddrParseError,
    },
    /// The settings do not fit together.
    #[error("network layout: {0}")]
    Invalid(String),
}

/// The layout of project networks.
#[derive(Debug, Clone)]
pub struct Layout {
    range: Ipv4Net,
    prefix: u8,
    manager: ManagerKind,
    flat_bridge: String,
    vlan_start: u16,
}

/// One project network, as its slot defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// Slot number within the fixed range.
    pub slot: u32,
    /// The network.
    pub cidr: Ipv4Net,
    /// First usable address.
    pub gateway: Ipv4Addr,
    /// Second usable address: where dnsmasq listens.
    pub dhcp_server: Ipv4Addr,
    /// The VLAN, in VLAN mode.
    pub vlan: Option<u16>,
    /// The bridge instances join.
    pub bridge: String,
}

impl NetworkPlan {
    /// Addresses instances may get: all hosts but the gateway and DHCP server.
    pub fn instance_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.cidr
            .hosts()
            .filter(move |a| *a != self.gateway && *a != self.dhcp_server)
    }
}

impl Layout {
    /// Checks the configuration's range and sizes.
    pub fn new(config: &NetworkConfig) -> Result<Self, LayoutError> {
        let range: Ipv4Net = config
            .fixed_range
            .parse()
            .map_err(|source| LayoutError::Range {
                value: config.fixed_range.clone(),
                source,
            })?;
        let size = config.network_size;
        if !size.is_power_of_two() || size < 8 {
            return Err(LayoutError::Invalid(format!(
                "network_size {size} must be a power of two, at least 8"
            )));
        }
        let prefix = 32 - size.trailing_zeros() as u8;
        if prefix < range.prefix_len() {
            return Err(LayoutError::Invalid(format!(
                "network_size {size} is larger than fixed_range {range}"
            )));
        }
        let layout = Self {
            range: range.trunc(),
            prefix,
            manager: config.manager,
            flat_bridge: config.flat_bridge.clone(),
            vlan_start: config.vlan_start,
        };
        if config.manager == ManagerKind::Flat {
            let last = layout.flat_bridge(layout.slots().saturating_sub(1));
            if stratus_host::check_ifname(&last).is_err() {
                return Err(LayoutError::Invalid(format!(
                    "flat_bridge {:?}: the last network's bridge would be {last:?}, not an interface name (at most 15 letters, digits, '-', '_' or '.')",
                    config.flat_bridge
                )));
            }
        }
        Ok(layout)
    }

    /// Flat mode's bridge for `slot`: `flat_bridge`'s trailing number plus
    /// the slot (br100, br101, …), or the slot appended when it has none.
    /// A bridge per project network, so projects never share a broadcast
    /// domain.
    fn flat_bridge(&self, slot: u32) -> String {
        let name = self.flat_bridge.as_str();
        let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let number = name[stem.len()..].parse::<u64>().unwrap_or(0);
        format!("{stem}{}", number + u64::from(slot))
    }

    /// How many project networks fit (capped by the VLAN ids left in VLAN mode).
    pub fn slots(&self) -> u32 {
        let networks = 1u64 << (self.prefix - self.range.prefix_len());
        let networks = match self.manager {
            ManagerKind::Flat => networks,
            ManagerKind::Vlan => networks.min(u64::from(4095 - self.vlan_start.min(4094))),
        };
        u32::try_from(networks).unwrap_or(u32::MAX)
    }

    /// The network in `slot`, if it exists.
    pub fn plan(&self, slot: u32) -> Option<NetworkPlan> {
        if slot >= self.slots() {
            return None;
        }
        let base = u32::from(self.range.network()) + (slot << (32 - self.prefix));
        let cidr = Ipv4Net::new(Ipv4Addr::from(base), self.prefix).ok()?;
        let (vlan, bridge) = match self.manager {
            ManagerKind::Flat => (None, self.flat_bridge(slot)),
            ManagerKind::Vlan => {
                let vlan = self.vlan_start + u16::try_from(slot).ok()?;
                (Some(vlan), format!("br{vlan}"))
            }
        };
        Some(NetworkPlan {
            slot,
            cidr,
            gateway: Ipv4Addr::from(base + 1),
            dhcp_server: Ipv4Addr::from(base + 2),
            vlan,
            bridge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(manager: ManagerKind, range: &str, size: u32) -> NetworkConfig {
        NetworkConfig {
            manager,
            fixed_range: range.into(),
            network_size: size,
            ..NetworkConfig::default()
        }
    }

    #[test]
    fn vlan_slots_get_their_own_block_vlan_and_bridge() {
        let layout = Layout::new(&config(ManagerKind::Vlan, "10.0.0.0/16", 256)).expect("layout");
        assert_eq!(layout.slots(), 256);
        let plan = layout.plan(3).expect("slot 3");
        assert_eq!(plan.cidr.to_string(), "10.0.3.0/24");
        assert_eq!(plan.gateway, Ipv4Addr::new(10, 0, 3, 1));
        assert_eq!(plan.dhcp_server, Ipv4Addr::new(10, 0, 3, 2));
        assert_eq!((plan.vlan, plan.bridge.as_str()), (Some(103), "br103"));
        let usable: Vec<_> = plan.instance_addresses().collect();
        assert_eq!(
            usable.len(),
            256 - 4,
            "network, gateway, dhcp and broadcast reserved"
        );
        assert_eq!(usable.first(), Some(&Ipv4Addr::new(10, 0, 3, 3)));
        assert_eq!(usable.last(), Some(&Ipv4Addr::new(10, 0, 3, 254)));
        assert!(layout.plan(256).is_none());
    }

    #[test]
    fn flat_slots_each_get_a_bridge_of_their_own() {
        let layout =
            Layout::new(&config(ManagerKind::Flat, "192.168.0.0/22", 512)).expect("layout");
        assert_eq!(layout.slots(), 2);
        let plan = layout.plan(1).expect("slot 1");
        assert_eq!(plan.cidr.to_string(), "192.168.2.0/23");
        assert_eq!((plan.vlan, plan.bridge.as_str()), (None, "br101"));
        assert_eq!(layout.plan(0).expect("slot 0").bridge, "br100");

        let mut named = config(ManagerKind::Flat, "10.0.0.0/16", 256);
        named.flat_bridge = "guests".into();
        let layout = Layout::new(&named).expect("layout");
        assert_eq!(layout.plan(255).expect("last").bridge, "guests255");
        named.flat_bridge = "a-very-long-br9".into();
        let err = Layout::new(&named).expect_err("too long once numbered");
        assert!(err.to_string().contains("a-very-long-br264"), "{err}");
    }

    #[test]
    fn bad_layouts_are_refused_with_the_reason() {
        let bad = [
            ("10.0.0.0/16", 100, "power of two"),
            ("10.0.0.0/24", 512, "larger than"),
            ("10.0.0/16", 256, "fixed_range"),
            ("10.0.0.0/16", 4, "at least 8"),
        ];
        for (range, size, why) in bad {
            let err = Layout::new(&config(ManagerKind::Vlan, range, size)).expect_err("refused");
            assert!(err.to_string().contains(why), "{range} {size}: {err}");
        }
    }
}
