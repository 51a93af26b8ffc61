//! Integration tests across crates and of the `stratus` binary.

mod cli;
mod configs;
mod ec2_api;
mod main_job;
mod scheduling;
