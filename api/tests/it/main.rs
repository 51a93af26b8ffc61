//! api integration tests.

mod addresses;
mod alloc;
mod attributes;
mod auth;
mod bounds;
mod claims;
mod conductor;
mod db;
mod endpoint;
mod fuzz;
mod hostile;
mod launch_options;
mod metadata;
mod migrations;
mod recovery;
mod replicas;
mod rule_descriptions;
mod rule_ids;
mod sigv2;
mod start_type;
mod tags;
mod vpcs;
mod xml_doc;
