//! api integration tests.

mod auth;
mod conductor;
mod db;
mod fuzz;
mod hostile;
mod metadata;
mod xml_doc;
