//! The host layer of stratus: every program the network controller and the
//! compute worker run on a host goes through [`HostCommands`] (real, or a
//! recording fake), and the host half of networking lives here: bridges and
//! VLANs, the iptables firewall and its nft anti-spoofing, the isolation
//! checks, and the network namespace guests live in.

pub mod bridge;
pub mod command;
pub mod fake;
pub mod firewall;
pub mod iptables;
pub mod isolation;
pub mod locks;
pub mod netns;
pub mod nft;
pub mod public;
pub mod real;

pub use command::{CommandError, HostCommands, Output, check_ifname};
pub use fake::FakeHost;
pub use real::RealHost;
