//! The metadata service's view of the instance tables.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use base64::Engine;
use tracing::warn;

use super::{InstanceMetadata, MetadataSource};
use crate::db::Db;

/// Instances by fixed IP, from the database the api service owns.
#[derive(Debug, Clone)]
pub struct DbSource {
    db: Db,
    /// Names public addresses (`public-hostname`); none: not shown.
    dns_domain: Option<String>,
}

impl DbSource {
    /// A source over `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            dns_domain: None,
        }
    }

    /// Names public addresses under `domain` (`[network] public_dns_domain`).
    pub fn with_dns_domain(mut self, domain: Option<String>) -> Self {
        self.dns_domain = domain;
        self
    }
}

#[async_trait]
impl MetadataSource for DbSource {
    async fn by_fixed_ip(&self, address: Ipv4Addr) -> Option<InstanceMetadata> {
        let row = match self.db.instance_by_fixed_ip(&address.to_string()).await {
            Ok(row) => row?,
            Err(e) => {
                warn!(%address, error = %stratus_rpc::error::error_chain(&e), "metadata lookup failed");
                return None;
            }
        };
        let user_data = row
            .user_data
            .as_deref()
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
        let public_ipv4: Option<Ipv4Addr> = row.public_ip.as_deref().and_then(|a| a.parse().ok());
        let public_hostname = public_ipv4
            .zip(self.dns_domain.as_deref())
            .map(|(a, domain)| stratus_rpc::wire::addresses::public_dns_name(a, domain));
        Some(InstanceMetadata {
            instance_id: row.ec2_id.clone(),
            uuid: row.uuid.clone(),
            hostname: row.ec2_id.clone(),
            local_ipv4: address,
            ami_id: row.image_id.clone(),
            reservation_id: row.reservation_id.clone(),
            availability_zone: row.availability_zone.clone().unwrap_or_default(),
            security_groups: row.groups.iter().map(|(_, name)| name.clone()).collect(),
            key: row.key_name.clone().zip(row.key_data.clone()),
            user_data,
            public_ipv4,
            public_hostname,
        })
    }
}
