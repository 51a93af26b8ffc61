//! Public (Elastic) addresses in the database: allocation of the lowest
//! free one, association with instances, and the full listing of mappings
//! the network host reconciles from.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, err, placeholders};

/// An Elastic IP a project allocated.
pub const ELASTIC: &str = "elastic";
/// The address an instance got at launch; not the user's to release.
pub const AUTO: &str = "auto";

/// A stored public address, with its instance's ids when associated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressRow {
    /// The public address (dotted quad).
    pub public_ip: String,
    /// Its project.
    pub project_id: String,
    /// `eipalloc-…`.
    pub allocation_id: String,
    /// `standard` or `vpc`.
    pub domain: String,
    /// [`ELASTIC`] or [`AUTO`].
    pub kind: String,
    /// The instance (UUID) it leads to, if associated.
    pub instance_uuid: Option<String>,
    /// `eipassoc-…`, while associated.
    pub association_id: Option<String>,
    /// When it was allocated.
    pub created_at: String,
    /// The instance's EC2 id (read, never written).
    pub instance_ec2_id: Option<String>,
    /// The instance's fixed IP (read, never written).
    pub private_ip: Option<String>,
}

impl AddressRow {
    /// Whether it is an Elastic IP (a user's), not a launch's address.
    pub fn is_elastic(&self) -> bool {
        self.kind == ELASTIC
    }
}

const SELECT: &str = "SELECT a.public_ip, a.project_id, a.allocation_id, a.domain, a.kind, \
    a.instance_uuid, a.association_id, a.created_at, i.ec2_id AS instance_ec2_id, i.fixed_ip AS private_ip \
    FROM addresses a LEFT JOIN instances i ON i.uuid = a.instance_uuid";

fn row(r: &AnyRow) -> Result<AddressRow, sqlx::Error> {
    Ok(from_row!(
        r,
        AddressRow {
            public_ip,
            project_id,
            allocation_id,
            domain,
            kind,
            instance_uuid,
            association_id,
            created_at,
            instance_ec2_id,
            private_ip,
        }
    ))
}

/// The statement that stores `a`.
fn insert(a: &AddressRow) -> super::Bound {
    let insert = sqlx::query(
        "INSERT INTO addresses (public_ip, project_id, allocation_id, domain, kind, instance_uuid, association_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    );
    bind_fields!(
        insert,
        a,
        [
            public_ip,
            project_id,
            allocation_id,
            domain,
            kind,
            instance_uuid,
            association_id,
            created_at
        ]
    )
}

impl Db {
    /// Stores a new address; one taken (address, allocation id, or an
    /// instance that has one) is a unique violation.
    pub async fn insert_address(&self, a: &AddressRow) -> Result<(), DbError> {
        insert(a)
            .execute(self.pool())
            .await
            .map_err(err("store address"))?;
        Ok(())
    }

    /// Every allocated address, all projects (to find a free one).
    pub async fn allocated_addresses(&self) -> Result<Vec<String>, DbError> {
        let query = sqlx::query("SELECT public_ip FROM addresses");
        self.all(
            query,
            |r| r.try_get("public_ip"),
            "list allocated addresses",
        )
        .await
    }

    /// The project's addresses (both kinds), by address.
    pub async fn addresses(&self, project_id: &str) -> Result<Vec<AddressRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.project_id = $1 ORDER BY a.public_ip"
        )))
        .bind(project_id.to_owned());
        self.all(query, row, "list addresses").await
    }

    /// One address, whatever its project (the caller checks the project).
    pub async fn address(&self, public_ip: &str) -> Result<Option<AddressRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.public_ip = $1"
        )))
        .bind(public_ip.to_owned());
        self.first(query, row, "find address").await
    }

    /// The address an instance has, if any.
    pub async fn address_of_instance(&self, uuid: &str) -> Result<Option<AddressRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.instance_uuid = $1"
        )))
        .bind(uuid.to_owned());
        self.first(query, row, "find an instance's address").await
    }

    /// Every associated address: (address, instance UUID), all projects.
    pub async fn public_mappings(&self) -> Result<Vec<(String, String)>, DbError> {
        let query = sqlx::query(
            "SELECT public_ip, instance_uuid FROM addresses WHERE instance_uuid IS NOT NULL ORDER BY public_ip",
        );
        let row = |r: &AnyRow| Ok((r.try_get("public_ip")?, r.try_get("instance_uuid")?));
        self.all(query, row, "list public mappings").await
    }

    /// Points `public_ip` at `uuid` with `association_id`, unless it has
    /// changed since `expected` was read (then false, nothing written).
    /// The instance's other address goes first: its launch address is
    /// deleted, another Elastic IP disassociated.
    pub async fn associate_address(
        &self,
        expected: &AddressRow,
        uuid: &str,
        association_id: &str,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        sqlx::query(
            "DELETE FROM addresses WHERE instance_uuid = $1 AND kind = $2 AND public_ip <> $3",
        )
        .bind(uuid.to_owned())
        .bind(AUTO)
        .bind(expected.public_ip.clone())
        .execute(&mut *tx)
        .await
        .map_err(err("free the launch address"))?;
        sqlx::query(
            "UPDATE addresses SET instance_uuid = NULL, association_id = NULL \
             WHERE instance_uuid = $1 AND public_ip <> $2",
        )
        .bind(uuid.to_owned())
        .bind(expected.public_ip.clone())
        .execute(&mut *tx)
        .await
        .map_err(err("disassociate the other address"))?;
        let done = sqlx::query(
            "UPDATE addresses SET instance_uuid = $1, association_id = $2 \
             WHERE public_ip = $3 AND allocation_id = $4 \
             AND COALESCE(association_id, '') = COALESCE($5, '')",
        )
        .bind(uuid.to_owned())
        .bind(association_id.to_owned())
        .bind(expected.public_ip.clone())
        .bind(expected.allocation_id.clone())
        .bind(expected.association_id.clone())
        .execute(&mut *tx)
        .await
        .map_err(err("associate address"))?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(err("roll back"))?;
            return Ok(false);
        }
        tx.commit().await.map_err(err("commit association"))?;
        Ok(true)
    }

    /// Leaves `public_ip` associated with nothing; whether it was
    /// associated with `association_id`.
    pub async fn disassociate_address(
        &self,
        public_ip: &str,
        association_id: &str,
    ) -> Result<bool, DbError> {
        let query = sqlx::query(
            "UPDATE addresses SET instance_uuid = NULL, association_id = NULL \
             WHERE public_ip = $1 AND association_id = $2",
        )
        .bind(public_ip.to_owned())
        .bind(association_id.to_owned());
        self.changed(query, "disassociate address").await
    }

    /// Deletes an address; whether it was there.
    pub async fn delete_address(&self, public_ip: &str) -> Result<bool, DbError> {
        let query =
            sqlx::query("DELETE FROM addresses WHERE public_ip = $1").bind(public_ip.to_owned());
        self.changed(query, "delete address").await
    }

    /// Frees what a gone instance held: its launch address deleted, its
    /// Elastic IP disassociated. The addresses it had.
    pub async fn free_addresses_of(&self, uuid: &str) -> Result<Vec<String>, DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        let held: Vec<String> =
            sqlx::query_scalar("SELECT public_ip FROM addresses WHERE instance_uuid = $1")
                .bind(uuid.to_owned())
                .fetch_all(&mut *tx)
                .await
                .map_err(err("find an instance's addresses"))?;
        sqlx::query("DELETE FROM addresses WHERE instance_uuid = $1 AND kind = $2")
            .bind(uuid.to_owned())
            .bind(AUTO)
            .execute(&mut *tx)
            .await
            .map_err(err("free the launch address"))?;
        sqlx::query(
            "UPDATE addresses SET instance_uuid = NULL, association_id = NULL WHERE instance_uuid = $1",
        )
        .bind(uuid.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(err("disassociate an instance's address"))?;
        tx.commit().await.map_err(err("commit freeing"))?;
        Ok(held)
    }

    /// Puts addresses back as `before` held them and deletes `created`
    /// (undoing a change the network host could not apply).
    pub async fn restore_addresses(
        &self,
        before: &[AddressRow],
        created: &[String],
    ) -> Result<(), DbError> {
        let ips: Vec<String> = before
            .iter()
            .map(|a| a.public_ip.clone())
            .chain(created.iter().cloned())
            .collect();
        if ips.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM addresses WHERE public_ip IN ({})",
            placeholders(1, ips.len())
        )));
        for ip in &ips {
            delete = delete.bind(ip.clone());
        }
        delete
            .execute(&mut *tx)
            .await
            .map_err(err("undo address change"))?;
        for a in before {
            insert(a)
                .execute(&mut *tx)
                .await
                .map_err(err("restore address"))?;
        }
        tx.commit().await.map_err(err("commit undo"))
    }

    /// Whether `uuid` launched wanting a public address.
    pub async fn wants_public_ip(&self, uuid: &str) -> Result<bool, DbError> {
        let wants: Option<i64> =
            sqlx::query_scalar("SELECT wants_public_ip FROM instances WHERE uuid = $1")
                .bind(uuid.to_owned())
                .fetch_optional(self.read())
                .await
                .map_err(err("read wants_public_ip"))?;
        Ok(wants.unwrap_or(0) != 0)
    }
}
