//! Integration tests across crates and of the `stratus` binary.

mod ansible;
mod api_replicas;
mod broker_restart;
mod cli;
mod cloud;
mod configs;
mod ec2_api;
mod end_to_end;
mod guest_cloud;
mod isolation;
mod libcloud;
mod main_job;
mod public_addresses;
mod recovery;
mod scheduling;
mod worker_kill;
