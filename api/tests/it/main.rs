//! api integration tests.

mod metadata;
