//! Compute worker integration tests.

mod security_groups;
