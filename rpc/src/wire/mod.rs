//! Types that cross service boundaries, shared by every service's client and
//! server.

pub mod compute;
pub mod conductor;
pub mod firewall;
pub mod ids;
pub mod network;
pub mod scheduler;
