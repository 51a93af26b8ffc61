//! The network controller and host networking: (to come) IPAM, bridges,
//! VLANs, DHCP and the firewall. For now it serves its topic.

pub mod config;
pub mod service;
