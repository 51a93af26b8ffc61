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

    /// The live (not gone) instance of the project that holds `address` as
    /// its fixed IP or asked for it: its EC2 id, if any.
    pub async fn private_ip_holder(
        &self,
        project_id: &str,
        address: Ipv4Addr,
    ) -> Result<Option<String>, DbError> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT i.ec2_id FROM instances i \
             LEFT JOIN instance_private_ips p ON p.uuid = i.uuid \
             WHERE i.project_id = $1 AND i.state NOT IN {} \
             AND (i.fixed_ip = $2 OR p.address = $2) \
             ORDER BY i.ec2_id LIMIT 1",
            super::instances::gone()
        )))
        .bind(project_id.to_owned())
        .bind(address.to_string())
        .fetch_optional(self.read())
        .await
        .map_err(err("find a private IP's holder"))
    }
}
