//! The network controller's replica of public-address mappings, and applying them.
//!
//! The api owns public addresses; it pushes each change here
//! (`map_public_addresses`, with a sequence) and lists them all on request
//! (`public_addresses`, with the sequence `as_of` taken before its read).
//! The replica is a table in the controller's own database, so a restarted
//! controller applies the mappings at once, before the api answers.
//!
//! Every row keeps the sequence of the change that wrote it; an address
//! cleared keeps its row, with no instance, until a listing newer than the
//! clear. So a change older than what a row holds is ignored, and a listing
//! replaces every row but those pushed after it was taken: a listing read
//! before a change never undoes it, whichever arrives first. (A listing
//! older than the last push is thereby never applied over that push, and
//! the addresses no push touched since still take the listing.)
//!
//! What is applied is the replica joined with the controller's own fixed-IP
//! allocations: a mapping whose instance has no fixed IP yet is neither
//! rendered nor bound until it has one.

use std::net::Ipv4Addr;

use sqlx::{AnyPool, Row};
use stratus_host::public::PublicNat;
use stratus_host::public::render::Mappings;
use stratus_rpc::wire::addresses::{MapPublicAddresses, PublicAddresses, PublicMapping};
use stratus_rpc::wire::ids::InstanceId;
use tracing::warn;

use crate::error::NetworkError;
use crate::ipam::store::{Store, StoreError, err};

/// The replica's table: an address with no instance is a clear, kept for
/// its sequence.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS public_mappings (\
    address TEXT PRIMARY KEY, \
    instance_id TEXT, \
    sequence BIGINT NOT NULL)";

/// The replica of mappings, and the host side it is applied to.
#[derive(Debug)]
pub struct PublicAddressing {
    pool: AnyPool,
    nat: PublicNat,
    /// Held from a replica write to the end of its apply, so applies follow
    /// the writes in order.
    turn: tokio::sync::Mutex<()>,
}

/// A sequence as the database keeps it (micro-seconds since 1970 fit).
fn stored(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

impl PublicAddressing {
    /// The replica in `store`'s database (its table made if missing),
    /// applied through `nat`.
    pub async fn open(store: &Store, nat: PublicNat) -> Result<Self, StoreError> {
        let pool = store.pool().clone();
        sqlx::query(TABLE)
            .execute(&pool)
            .await
            .map_err(err("create public_mappings"))?;
        Ok(Self {
            pool,
            nat,
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// The host side.
    pub fn nat(&self) -> &PublicNat {
        &self.nat
    }

    /// Records a pushed change (each address only if the change is newer
    /// than what its row holds) and applies the result.
    pub async fn push(&self, change: &MapPublicAddresses) -> Result<(), NetworkError> {
        let _turn = self.turn.lock().await;
        let sequence = stored(change.sequence);
        let mut tx = self.pool.begin().await.map_err(err("begin"))?;
        for mapping in &change.set {
            sqlx::query(
                "INSERT INTO public_mappings (address, instance_id, sequence) VALUES ($1, $2, $3) \
                 ON CONFLICT (address) DO UPDATE SET instance_id = excluded.instance_id, \
                 sequence = excluded.sequence WHERE public_mappings.sequence < excluded.sequence",
            )
            .bind(mapping.address.to_string())
            .bind(mapping.instance_id.to_string())
            .bind(sequence)
            .execute(&mut *tx)
            .await
            .map_err(err("record a public mapping"))?;
        }
        for address in &change.clear {
            sqlx::query(
                "INSERT INTO public_mappings (address, instance_id, sequence) VALUES ($1, NULL, $2) \
                 ON CONFLICT (address) DO UPDATE SET instance_id = NULL, \
                 sequence = excluded.sequence WHERE public_mappings.sequence < excluded.sequence",
            )
            .bind(address.to_string())
            .bind(sequence)
            .execute(&mut *tx)
            .await
            .map_err(err("record a public clear"))?;
        }
        tx.commit().await.map_err(err("commit public mappings"))?;
        self.apply_locked().await
    }

    /// Replaces the replica with a full listing, but for the rows pushed
    /// after it was taken, and applies the result.
    pub async fn replace(&self, listing: &PublicAddresses) -> Result<(), NetworkError> {
        let _turn = self.turn.lock().await;
        let as_of = stored(listing.as_of);
        let mut tx = self.pool.begin().await.map_err(err("begin"))?;
        sqlx::query("DELETE FROM public_mappings WHERE sequence <= $1")
            .bind(as_of)
            .execute(&mut *tx)
            .await
            .map_err(err("drop listed-over public mappings"))?;
        for mapping in &listing.mappings {
            sqlx::query(
                "INSERT INTO public_mappings (address, instance_id, sequence) VALUES ($1, $2, $3) \
                 ON CONFLICT (address) DO NOTHING",
            )
            .bind(mapping.address.to_string())
            .bind(mapping.instance_id.to_string())
            .bind(as_of)
            .execute(&mut *tx)
            .await
            .map_err(err("record a listed public mapping"))?;
        }
        tx.commit().await.map_err(err("commit public listing"))?;
        self.apply_locked().await
    }

    /// Applies the replica as it stands (at start, and when an instance's
    /// fixed IP comes or goes).
    pub async fn apply(&self) -> Result<(), NetworkError> {
        let _turn = self.turn.lock().await;
        self.apply_locked().await
    }

    /// Whether the instance has a mapping, so its fixed IP matters here.
    pub async fn is_mapped(&self, instance_id: &InstanceId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT address FROM public_mappings WHERE instance_id = $1 LIMIT 1")
            .bind(instance_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("find an instance's public mapping"))?;
        Ok(row.is_some())
    }

    /// The replica's mappings (clears left out), by address.
    pub async fn mappings(&self) -> Result<Vec<PublicMapping>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, instance_id FROM public_mappings \
             WHERE instance_id IS NOT NULL ORDER BY address",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("list public mappings"))?;
        let mut mappings = Vec::with_capacity(rows.len());
        for row in rows {
            let address: String = row.try_get("address").map_err(err("read mapping"))?;
            let instance: String = row.try_get("instance_id").map_err(err("read mapping"))?;
            match (address.parse(), instance.parse()) {
                (Ok(address), Ok(instance_id)) => mappings.push(PublicMapping {
                    address,
                    instance_id,
                }),
                _ => {
                    warn!(%address, instance_id = %instance, "an unreadable public mapping; left out")
                }
            }
        }
        Ok(mappings)
    }

    /// What the host should hold: each mapped address whose instance has a
    /// fixed IP here, to that IP.
    async fn rendered(&self) -> Result<Mappings, StoreError> {
        let rows = sqlx::query(
            "SELECT p.address AS public_address, f.address AS fixed_address \
             FROM public_mappings p JOIN fixed_ips f ON f.instance_id = p.instance_id \
             WHERE p.instance_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("join public mappings with fixed IPs"))?;
        let mut mappings = Mappings::new();
        for row in rows {
            let public: String = row.try_get("public_address").map_err(err("read mapping"))?;
            let fixed: String = row.try_get("fixed_address").map_err(err("read mapping"))?;
            match (public.parse::<Ipv4Addr>(), fixed.parse::<Ipv4Addr>()) {
                (Ok(public), Ok(fixed)) => {
                    mappings.insert(public, fixed);
                }
                _ => warn!(%public, %fixed, "an unreadable public mapping; not applied"),
            }
        }
        Ok(mappings)
    }

    async fn apply_locked(&self) -> Result<(), NetworkError> {
        let wanted = self.rendered().await?;
        self.nat.apply(&wanted).await?;
        Ok(())
    }
}
