//! The scheduler: keeps host state from compute reports and (to come) places
//! instances with the chance, zone, simple and filter drivers.

pub mod config;
pub mod host_state;
pub mod service;
