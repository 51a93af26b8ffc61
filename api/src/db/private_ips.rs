//! The private IP address a launch asked for, per instance: kept apart
//! from the instance's row so a launch sent again after a restart asks for
//! the same address.

use std::net::Ipv4Addr;

use super::{Db, DbError, err};

impl Db {
    /// Records that instance `uuid` must get `address`.
    pub async fn set_requested_ip(&self, uuid: &str, address: Ipv4Addr) -> Result<(), DbError> {
        sqlx::query("INSERT INTO instance_private_ips (uuid, address) VALUES ($1, $2)")
            .bind(uuid.to_owned())
            .bind(address.to_string())
            .execute(self.pool())
            .await
            .map_err(err("store requested private IP"))?;
        Ok(())
    }

    /// The address instance `uuid` asked for, if it did (a stored value
    /// that no longer parses counts as none).
    pub async fn requested_ip(&self, uuid: &str) -> Result<Option<Ipv4Addr>, DbError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT address FROM instance_private_ips WHERE uuid = $1")
                .bind(uuid.to_owned())
                .fetch_optional(self.read())
                .await
                .map_err(err("read requested private IP"))?;
        Ok(found.and_then(|a| a.parse().ok()))
    }
}
