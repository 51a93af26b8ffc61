//! The compute worker: (to come) the manager that builds and runs instances
//! through a `VirtDriver`. For now it serves its topics.

pub mod config;
pub mod service;
