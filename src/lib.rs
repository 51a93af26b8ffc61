//! The `stratus` command: configuration, logging, and starting services.
//! The services themselves live in their crates.

pub mod admin;
pub mod api_bench;
pub mod boot_bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod ec2_client;
pub mod fake_cloud;
pub mod logging;
pub mod scale_bench;
pub mod services;
