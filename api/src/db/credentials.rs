//! Access keys: who signs requests, for which project.

use sqlx::Row;

use super::{Db, DbError, err};

/// A stored access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key id (`AKIA…`).
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    /// The project it acts in.
    pub project_id: String,
    /// The user it belongs to.
    pub user_id: String,
    /// Whether it may do administrators' things (force a host).
    pub is_admin: bool,
}

impl Db {
    /// Stores a new key.
    pub async fn insert_credential(&self, c: &Credential) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO credentials (access_key, secret_key, project_id, user_id, is_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.access_key.clone())
        .bind(c.secret_key.clone())
        .bind(c.project_id.clone())
        .bind(c.user_id.clone())
        .bind(i64::from(c.is_admin))
        .bind(super::now())
        .execute(self.pool())
        .await
        .map_err(err("store credentials"))?;
        Ok(())
    }

    /// The key with this id, if any.
    pub async fn credential(&self, access_key: &str) -> Result<Option<Credential>, DbError> {
        let query = sqlx::query(
            "SELECT access_key, secret_key, project_id, user_id, is_admin FROM credentials WHERE access_key = $1",
        )
        .bind(access_key.to_owned());
        let row = |r: &sqlx::any::AnyRow| {
            Ok(from_row!(
                r,
                Credential { access_key, secret_key, project_id, user_id },
                is_admin: r.try_get::<i64, _>("is_admin")? != 0,
            ))
        };
        self.first(query, row, "find credentials").await
    }

    /// Any key of this project and user (the embedded mode reuses one).
    pub async fn credential_for(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<Credential>, DbError> {
        let key: Option<String> = sqlx::query_scalar(
            "SELECT access_key FROM credentials WHERE project_id = $1 AND user_id = $2 ORDER BY created_at LIMIT 1",
        )
        .bind(project_id.to_owned())
        .bind(user_id.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find credentials"))?;
        match key {
            Some(key) => self.credential(&key).await,
            None => Ok(None),
        }
    }
}
