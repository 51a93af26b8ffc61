//! The controller's tables, through sqlx's `Any` driver: SQLite (default) or
//! PostgreSQL with the same schema and queries.

use std::net::Ipv4Addr;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use super::layout::NetworkPlan;

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
#[error("network database ({action})")]
pub struct StoreError {
    action: &'static str,
    #[source]
    source: sqlx::Error,
}

/// Wraps a failed `action`'s error (for the other tables of this database).
pub(crate) fn err(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError { action, source }
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    /// Slot in the fixed range.
    pub slot: i64,
    /// Owning project.
    pub project_id: String,
    /// CIDR.
    pub cidr: String,
    /// Gateway address.
    pub gateway: String,
    /// dnsmasq's address.
    pub dhcp_server: String,
    /// VLAN id, in VLAN mode.
    pub vlan: Option<i64>,
    /// Bridge name.
    pub bridge: String,
}

/// An address given to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRow {
    /// The address.
    pub address: String,
    /// Its network.
    pub network: NetworkRow,
    /// The instance's MAC.
    pub mac: String,
    /// The instance's host name for DHCP.
    pub hostname: String,
}

/// What an attempt to claim an address found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The address is now the instance's.
    Won,
    /// Someone else took it first.
    Taken,
    /// The instance already holds an address (a concurrent request won).
    InstanceHasOne,
}

/// The controller's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

const NETWORK_COLUMNS: &str =
    "n.slot, n.project_id, n.cidr, n.gateway, n.dhcp_server, n.vlan, n.bridge";

fn network_row(row: &sqlx::any::AnyRow) -> Result<NetworkRow, sqlx::Error> {
    Ok(NetworkRow {
        slot: row.try_get("slot")?,
        project_id: row.try_get("project_id")?,
        cidr: row.try_get("cidr")?,
        gateway: row.try_get("gateway")?,
        dhcp_server: row.try_get("dhcp_server")?,
        vlan: row.try_get("vlan")?,
        bridge: row.try_get("bridge")?,
    })
}

impl Store {
    /// Opens (creating if needed) the database at `url` and its tables.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        // One SQLite connection serializes writers inside the process, so
        // concurrent allocations never meet "database is locked".
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 8 })
            // Allocations queue for SQLite's one connection by design.
            .acquire_slow_threshold(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(err("connect"))?;
        if sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(err("enable WAL"))?;
        }
        for statement in include_str!("../../migrations/0001_networks.sql").split(';') {
            let statement = statement.trim();
            if statement
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
            {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&pool)
                .await
                .map_err(err("create tables"))?;
        }
        Ok(Self { pool })
    }

    /// The instance's current address, if it has one.
    pub async fn allocation(&self, instance_id: &str) -> Result<Option<AllocationRow>, StoreError> {
        let row = sqlx::query(const_format(
            "SELECT f.address, f.mac, f.hostname, ",
            " FROM fixed_ips f JOIN networks n ON n.slot = f.slot WHERE f.instance_id = $1",
        ))
        .bind(instance_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(err("find allocation"))?;
        row.map(|row| {
            Ok(AllocationRow {
                address: row.try_get("address")?,
                mac: row.try_get::<Option<String>, _>("mac")?.unwrap_or_default(),
                hostname: row
                    .try_get::<Option<String>, _>("hostname")?
                    .unwrap_or_default(),
                network: network_row(&row)?,
            })
        })
        .transpose()
        .map_err(err("read allocation"))
    }

    /// The project's network, if it has one.
    pub async fn project_network(
        &self,
        project_id: &str,
    ) -> Result<Option<NetworkRow>, StoreError> {
        let row = sqlx::query(const_format(
            "SELECT ",
            " FROM networks n WHERE n.project_id = $1",
        ))
        .bind(project_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(err("find project network"))?;
        row.as_ref()
            .map(network_row)
            .transpose()
            .map_err(err("read network"))
    }

    /// Every network.
    pub async fn networks(&self) -> Result<Vec<NetworkRow>, StoreError> {
        let rows = sqlx::query(const_format("SELECT ", " FROM networks n ORDER BY n.slot"))
            .fetch_all(&self.pool)
            .await
            .map_err(err("list networks"))?;
        rows.iter()
            .map(network_row)
            .collect::<Result<_, _>>()
            .map_err(err("read network"))
    }

    /// Slots already taken.
    pub async fn used_slots(&self) -> Result<Vec<u32>, StoreError> {
        let rows = sqlx::query("SELECT slot FROM networks ORDER BY slot")
            .fetch_all(&self.pool)
            .await
            .map_err(err("list slots"))?;
        rows.iter()
            .map(|r| {
                r.try_get::<i64, _>("slot")
                    .map(|s| u32::try_from(s).unwrap_or(u32::MAX))
            })
            .collect::<Result<_, _>>()
            .map_err(err("read slot"))
    }

    /// Creates the project's network in `plan`'s slot with all its instance
    /// addresses, in one transaction. `Ok(false)`: the slot or the project was
    /// taken concurrently; look again.
    pub async fn create_network(
        &self,
        plan: &NetworkPlan,
        project_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(err("begin"))?;
        let slot = i64::from(plan.slot);
        let inserted = sqlx::query(
            "INSERT INTO networks (slot, project_id, cidr, gateway, dhcp_server, vlan, bridge) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(slot)
        .bind(project_id.to_owned())
        .bind(plan.cidr.to_string())
        .bind(plan.gateway.to_string())
        .bind(plan.dhcp_server.to_string())
        .bind(plan.vlan.map(i64::from))
        .bind(plan.bridge.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
            Err(e) => return Err(err("create network")(e)),
        }
        for address in plan.instance_addresses() {
            sqlx::query("INSERT INTO fixed_ips (address, slot) VALUES ($1, $2)")
                .bind(address.to_string())
                .bind(slot)
                .execute(&mut *tx)
                .await
                .map_err(err("create addresses"))?;
        }
        tx.commit().await.map_err(err("commit network"))?;
        Ok(true)
    }

    /// Up to `limit` free addresses of a network.
    pub async fn free_addresses(&self, slot: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT address FROM fixed_ips WHERE slot = $1 AND instance_id IS NULL LIMIT $2",
        )
        .bind(slot)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("find free addresses"))?;
        rows.iter()
            .map(|r| r.try_get("address"))
            .collect::<Result<_, _>>()
            .map_err(err("read address"))
    }

    /// Whether `address` is an instance address of the network in `slot`:
    /// `None` when it is not, else who holds it (`Some(None)`: free).
    pub async fn holder(
        &self,
        slot: i64,
        address: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query("SELECT instance_id FROM fixed_ips WHERE slot = $1 AND address = $2")
            .bind(slot)
            .bind(address.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("find address"))?;
        row.map(|r| r.try_get::<Option<String>, _>("instance_id"))
            .transpose()
            .map_err(err("read address"))
    }

    /// Gives `address` to the instance unless someone took it first. The
    /// conditional update is atomic in both databases, and the unique
    /// instance column stops one instance from holding two addresses.
    pub async fn claim(
        &self,
        address: &str,
        instance_id: &str,
        mac: &str,
        hostname: &str,
    ) -> Result<Claim, StoreError> {
        let result = sqlx::query(
            "UPDATE fixed_ips SET instance_id = $1, mac = $2, hostname = $3 \
             WHERE address = $4 AND instance_id IS NULL",
        )
        .bind(instance_id.to_owned())
        .bind(mac.to_owned())
        .bind(hostname.to_owned())
        .bind(address.to_owned())
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) if done.rows_affected() == 1 => Ok(Claim::Won),
            Ok(_) => Ok(Claim::Taken),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Claim::InstanceHasOne),
            Err(e) => Err(err("claim address")(e)),
        }
    }

    /// Frees the instance's address; returns what it held.
    pub async fn release(&self, instance_id: &str) -> Result<Option<AllocationRow>, StoreError> {
        let Some(held) = self.allocation(instance_id).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE fixed_ips SET instance_id = NULL, mac = NULL, hostname = NULL \
             WHERE instance_id = $1",
        )
        .bind(instance_id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(err("release address"))?;
        Ok(Some(held))
    }

    /// The instances holding an address, by id.
    pub async fn holders(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance_id FROM fixed_ips WHERE instance_id IS NOT NULL ORDER BY instance_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("list address holders"))?;
        rows.iter()
            .map(|r| r.try_get("instance_id"))
            .collect::<Result<_, _>>()
            .map_err(err("read address holder"))
    }

    /// The DHCP host entries of a network: (mac, hostname, address).
    pub async fn dhcp_hosts(
        &self,
        slot: i64,
    ) -> Result<Vec<(String, String, Ipv4Addr)>, StoreError> {
        let rows = sqlx::query(
            "SELECT mac, hostname, address FROM fixed_ips \
             WHERE slot = $1 AND instance_id IS NOT NULL ORDER BY address",
        )
        .bind(slot)
        .fetch_all(&self.pool)
        .await
        .map_err(err("list DHCP hosts"))?;
        let mut hosts = Vec::with_capacity(rows.len());
        for row in rows {
            let address: String = row.try_get("address").map_err(err("read host"))?;
            let Ok(ip) = address.parse() else { continue };
            hosts.push((
                row.try_get::<Option<String>, _>("mac")
                    .map_err(err("read host"))?
                    .unwrap_or_default(),
                row.try_get::<Option<String>, _>("hostname")
                    .map_err(err("read host"))?
                    .unwrap_or_default(),
                ip,
            ));
        }
        Ok(hosts)
    }

    /// The connection pool, for the controller's other tables.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Builds `head + network columns + tail` as a static query. The pieces are
/// constants, never input.
fn const_format(head: &'static str, tail: &'static str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("{head}{NETWORK_COLUMNS}{tail}"))
}
