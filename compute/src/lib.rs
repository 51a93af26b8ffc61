//! The compute worker: the manager that builds and runs instances on this
//! host, through a `VirtDriver` (libvirt, or the fake for embedded and scale
//! tests).

pub mod config;
pub mod driver;
pub mod service;
pub mod state;
pub mod xml;
