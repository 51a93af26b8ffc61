//! The actions, one file per kind of resource.

pub mod addresses;
pub mod attributes;
pub mod groups;
pub mod images;
pub mod info;
pub mod instances;
pub mod interfaces;
pub mod keypairs;
pub mod lifecycle;
pub mod network_interfaces;
pub mod permissions;
pub mod render;
pub mod rules;
pub mod run;
pub mod tags;
pub mod vpcs;
