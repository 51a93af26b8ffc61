//! `stratus bench ...`: every benchmark, each in its own file, printing its
//! figures with the one set of statistics in [`stats`].

pub mod api;
pub mod boot;
pub mod command;
pub mod error;
pub mod firewall;
pub mod guest;
pub mod inject;
pub mod rpc;
pub mod scale;
pub mod scheduler;
pub mod spawn;
pub mod stats;

pub use error::BenchError;
