//! Networking for stratus: the network controller (addresses, networks,
//! DHCP) and the host-side library compute workers use (bridges, VLANs, the
//! iptables firewall).

pub mod config;
pub mod dhcp;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod linux;
pub mod manager;
pub mod service;

pub use error::NetworkError;
pub use manager::NetworkManager;
