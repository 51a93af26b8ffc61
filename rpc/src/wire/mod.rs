//! Types that cross service boundaries, shared by every service's client and
//! server.

pub mod addresses;
pub mod compute;
pub mod conductor;
pub mod firewall;
pub mod ids;
pub mod instance_state;
pub mod network;
pub mod scheduler;
