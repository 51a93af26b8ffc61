//! api integration tests.

mod auth;
mod conductor;
mod db;
mod hostile;
mod metadata;
