//! Key pairs: public keys only; a created key's private half is never stored.

use sqlx::Row;

use super::{Db, DbError, err};

/// A stored key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairRow {
    /// `key-…`.
    pub key_pair_id: String,
    /// Its project.
    pub project_id: String,
    /// Its name, unique in the project.
    pub name: String,
    /// `rsa` or `ed25519`.
    pub key_type: String,
    /// As EC2 shows it.
    pub fingerprint: String,
    /// The OpenSSH public key.
    pub public_key: String,
    /// When it was made.
    pub created_at: String,
}

const COLUMNS: &str =
    "key_pair_id, project_id, name, key_type, fingerprint, public_key, created_at";

fn row(r: &sqlx::any::AnyRow) -> Result<KeyPairRow, sqlx::Error> {
    Ok(from_row!(
        r,
        KeyPairRow {
            key_pair_id,
            project_id,
            name,
            key_type,
            fingerprint,
            public_key,
            created_at
        }
    ))
}

impl Db {
    /// Stores a key pair; a name taken in the project is a unique violation.
    pub async fn insert_key_pair(&self, k: &KeyPairRow) -> Result<(), DbError> {
        let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO key_pairs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )));
        bind_fields!(
            insert,
            k,
            [
                key_pair_id,
                project_id,
                name,
                key_type,
                fingerprint,
                public_key,
                created_at
            ]
        )
        .execute(self.pool())
        .await
        .map_err(err("store key pair"))?;
        Ok(())
    }

    /// The project's key pairs, by name.
    pub async fn key_pairs(&self, project_id: &str) -> Result<Vec<KeyPairRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM key_pairs WHERE project_id = $1 ORDER BY name"
        )))
        .bind(project_id.to_owned());
        self.all(query, row, "list key pairs").await
    }

    /// One key pair of the project, by name.
    pub async fn key_pair(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<KeyPairRow>, DbError> {
        Ok(self
            .key_pairs(project_id)
            .await?
            .into_iter()
            .find(|k| k.name == name))
    }

    /// Deletes a key pair by name or id; whether one was there.
    pub async fn delete_key_pair(
        &self,
        project_id: &str,
        name_or_id: &str,
    ) -> Result<bool, DbError> {
        let query = sqlx::query(
            "DELETE FROM key_pairs WHERE project_id = $1 AND (name = $2 OR key_pair_id = $2)",
        )
        .bind(project_id.to_owned())
        .bind(name_or_id.to_owned());
        self.changed(query, "delete key pair").await
    }
}
