//! The network controller of stratus: fixed IPs for instances (IPAM over
//! SQLite or PostgreSQL), the networks they live in, and DHCP (one dnsmasq
//! per network) that hands them out. The host half of networking (bridges,
//! VLANs, the iptables firewall) is the `stratus-host` crate, which compute
//! workers use without this one.

pub mod config;
pub mod dhcp;
pub mod error;
pub mod ipam;
pub mod manager;
pub mod public;
pub mod reconcile;
pub mod service;

pub use error::NetworkError;
pub use manager::NetworkManager;
