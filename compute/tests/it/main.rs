//! Compute worker integration tests.

mod config_drive;
mod domain_xml;
mod fake_network;
mod faults;
mod harness;
mod image_cache;
mod inject;
mod isolation;
mod libvirt;
mod manager;
mod private_ip;
mod reconcile;
mod recovery;
mod security_groups;
mod source_dest;
mod start_changes;
