//! The `stratus` command: configuration, logging, and starting services.
//! The services themselves live in their crates.

pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod ec2_client;
pub mod error_chain;
pub mod fake_cloud;
pub mod logging;
pub mod services;
