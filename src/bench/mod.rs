//! `stratus bench ...`: every benchmark in a file of its own, sharing one
//! error, one set of statistics and the guest fixtures.

/// `bench api`: the EC2 endpoint under load on fake hypervisors.
pub mod api;
/// `bench boot`: RunInstances to the boot marker and first SSH, against bare QEMU.
pub mod boot;
/// From the command line's sizes to each bench's run.
pub mod command;
/// The one error of every bench.
pub mod error;
/// `bench firewall`: whole-table firewall applies and fixed IP allocations.
pub mod firewall;
/// What the benches that build guests share.
pub mod guest;
/// `bench inject`: key injection by each path, and a config drive.
pub mod inject;
/// `bench rpc`: stratus calls and casts against the bare lapin round trip.
pub mod rpc;
/// `bench scale`: the whole launch path at scale over RabbitMQ.
pub mod scale;
/// `bench scheduler`: placement decisions per second.
pub mod scheduler;
/// `bench spawn`: one guest from run_instance to RUNNING, by step.
pub mod spawn;
/// Quantiles, medians, rates and spreads, and how they print.
pub mod stats;

pub use error::BenchError;
