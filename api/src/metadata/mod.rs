//! The metadata service guests reach at 169.254.169.254 (a DNAT rule on each
//! compute host sends it here). The requester's fixed IP says which
//! instance it is; nothing in a path can name another instance. An address
//! no instance holds gets 404, token requests included.

pub mod db_source;
pub mod server;
pub mod token;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::RwLock;

use async_trait::async_trait;

/// What the metadata service tells one instance about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMetadata {
    /// `i-…`.
    pub instance_id: String,
    /// The instance's UUID.
    pub uuid: String,
    /// Its host name.
    pub hostname: String,
    /// Its fixed IP.
    pub local_ipv4: Ipv4Addr,
    /// Its image, `ami-…`.
    pub ami_id: String,
    /// Its reservation, `r-…`.
    pub reservation_id: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// Its security groups.
    pub security_groups: Vec<String>,
    /// Its key pair: name and OpenSSH public key.
    pub key: Option<(String, String)>,
    /// Its user data, as given.
    pub user_data: Option<Vec<u8>>,
    /// Its public address, if it has one.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Its public DNS name, if it has a public address the cloud names.
    pub public_hostname: Option<String>,
}

/// Where the service finds instances by fixed IP.
#[async_trait]
pub trait MetadataSource: Send + Sync + 'static {
    /// The instance holding `address`, if any.
    async fn by_fixed_ip(&self, address: Ipv4Addr) -> Option<InstanceMetadata>;
}

/// Instances kept in memory (the embedded mode's table, and tests).
#[derive(Debug, Default)]
pub struct MemorySource {
    instances: RwLock<HashMap<Ipv4Addr, InstanceMetadata>>,
}

impl MemorySource {
    /// Records (or replaces) an instance.
    pub fn insert(&self, metadata: InstanceMetadata) {
        self.instances
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(metadata.local_ipv4, metadata);
    }

    /// Forgets the instance at `address`.
    pub fn remove(&self, address: Ipv4Addr) {
        self.instances
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&address);
    }

    /// Forgets the instance with this UUID, wherever it was.
    pub fn remove_instance(&self, uuid: &str) {
        self.instances
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, m| m.uuid != uuid);
    }
}

#[async_trait]
impl MetadataSource for MemorySource {
    async fn by_fixed_ip(&self, address: Ipv4Addr) -> Option<InstanceMetadata> {
        self.instances
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&address)
            .cloned()
    }
}
