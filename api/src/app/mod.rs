//! The application layer: what the cloud does, between the entry points
//! (EC2 actions, the conductor) and the database. Entry points parse, call
//! one function here, and render.

pub mod addresses;
pub mod instances;
pub mod quota;
pub mod security_groups;
pub mod vpcs;
