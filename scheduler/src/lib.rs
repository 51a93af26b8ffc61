//! The scheduler: keeps host state from compute reports and places instances
//! with the chance, zone, simple or filter driver, retrying failed builds on
//! other hosts.

pub mod config;
pub mod drivers;
pub mod error;
pub mod filters;
pub mod host_state;
pub mod manager;
pub mod placed;
pub mod placer;
pub mod request;
pub mod service;
