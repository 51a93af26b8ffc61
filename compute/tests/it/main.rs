//! Compute worker integration tests.

mod domain_xml;
mod security_groups;
