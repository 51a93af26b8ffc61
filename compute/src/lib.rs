//! The compute worker: the manager that builds and runs instances on this
//! host, through a `VirtDriver` (libvirt, or the fake for embedded and scale
//! tests).

pub mod config;
pub mod config_drive;
pub mod driver;
pub mod durable;
pub mod host;
pub mod image_cache;
pub mod inject;
pub mod instance_dir;
pub mod manager;
pub mod service;
pub mod state;
pub mod worker;
pub mod xml;
