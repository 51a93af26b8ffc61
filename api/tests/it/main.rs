//! api integration tests.

mod auth;
mod conductor;
mod db;
mod metadata;
