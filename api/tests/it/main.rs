//! api integration tests.

mod auth;
mod conductor;
mod metadata;
