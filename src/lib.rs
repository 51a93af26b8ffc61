//! The `stratus` command's library: configuration, logging, starting the
//! services, the operator commands, the all-in-one's demo, and the benches.
//! The services themselves live in their crates.

/// Operator commands: host enable/disable, service list, console, tail,
/// credentials and image import.
pub mod admin;
/// `stratus bench ...`: every benchmark and the statistics they share.
pub mod bench;
/// Command-line arguments.
pub mod cli;
/// The configuration file and its `STRATUS_*` overrides.
pub mod config;
/// The all-in-one's demo guest, booted once the services are up.
pub mod demo;
/// A small signed EC2 client for the benches and the demo.
pub mod ec2_client;
/// The boxed cause the root crate's errors keep.
pub mod error;
/// A whole cloud in one process on fake hypervisors, for benches and tests.
pub mod fake_cloud;
/// Logging setup, and the compute worker's log lines for `stratus tail`.
pub mod logging;
/// Starting services in this process and running until a signal.
pub mod services;
