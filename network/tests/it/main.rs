//! Network integration tests: IPAM against SQLite and PostgreSQL, the
//! rendered firewall against golden files, and, as root inside network
//! namespaces the tests create, bridges, iptables and dnsmasq for real.

mod antispoof_traffic;
mod bridges;
mod dhcp;
mod firewall_golden;
mod firewall_traffic;
mod ipam;
mod public;
mod public_traffic;
mod reconcile;
mod service;
mod source_dest_traffic;
mod support;
