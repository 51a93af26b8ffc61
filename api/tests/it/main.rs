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
mod metadata;
mod migrations;
mod recovery;
mod sigv2;
mod xml_doc;
