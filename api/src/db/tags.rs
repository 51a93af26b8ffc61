//! Tags on every taggable resource (see `ec2::actions::tags`), kept by
//! resource id: a resource that goes drops its tags.

use sqlx::Row;

use super::{Db, DbError, err, placeholders};

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    /// The resource (`i-…`, `ami-…`, `sg-…`, `sgr-…`, `vpc-…`, `eni-…`, …).
    pub resource_id: String,
    /// `instance`, `image`, `security-group`, `vpc`, `elastic-ip`, ….
    pub resource_type: String,
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// The statement that stores `tag` of `project_id`.
pub(super) fn insert(
    project_id: &str,
    tag: &TagRow,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO tags (resource_id, project_id, resource_type, tag_key, tag_value) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tag.resource_id.clone())
    .bind(project_id.to_owned())
    .bind(tag.resource_type.clone())
    .bind(tag.key.clone())
    .bind(tag.value.clone())
}

impl Db {
    /// Sets tags (replacing values of keys already there).
    pub async fn put_tags(&self, project_id: &str, tags: &[TagRow]) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        for t in tags {
            sqlx::query("DELETE FROM tags WHERE resource_id = $1 AND tag_key = $2")
                .bind(t.resource_id.clone())
                .bind(t.key.clone())
                .execute(&mut *tx)
                .await
                .map_err(err("replace tag"))?;
            insert(project_id, t)
                .execute(&mut *tx)
                .await
                .map_err(err("store tag"))?;
        }
        tx.commit().await.map_err(err("commit tags"))
    }

    /// Deletes tags of `resource_id`: a key with no value deletes whatever
    /// value it has; with a value, only when it matches.
    pub async fn delete_tag(
        &self,
        project_id: &str,
        resource_id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), DbError> {
        let query = match value {
            Some(_) => {
                "DELETE FROM tags WHERE project_id = $1 AND resource_id = $2 AND tag_key = $3 AND tag_value = $4"
            }
            None => "DELETE FROM tags WHERE project_id = $1 AND resource_id = $2 AND tag_key = $3",
        };
        let mut q = sqlx::query(query)
            .bind(project_id.to_owned())
            .bind(resource_id.to_owned())
            .bind(key.to_owned());
        if let Some(v) = value {
            q = q.bind(v.to_owned());
        }
        q.execute(self.pool()).await.map_err(err("delete tag"))?;
        Ok(())
    }

    /// Every tag of the project, or of the given resources only.
    pub async fn tags(
        &self,
        project_id: &str,
        resources: Option<&[String]>,
    ) -> Result<Vec<TagRow>, DbError> {
        let mut sql =
            "SELECT resource_id, resource_type, tag_key, tag_value FROM tags WHERE project_id = $1"
                .to_owned();
        if let Some(ids) = resources {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            sql.push_str(&format!(
                " AND resource_id IN ({})",
                placeholders(2, ids.len())
            ));
        }
        sql.push_str(" ORDER BY resource_id, tag_key");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id.to_owned());
        for id in resources.unwrap_or_default() {
            q = q.bind(id.clone());
        }
        let rows = q.fetch_all(self.read()).await.map_err(err("list tags"))?;
        rows.iter()
            .map(|r| {
                Ok(TagRow {
                    resource_id: r.try_get("resource_id")?,
                    resource_type: r.try_get("resource_type")?,
                    key: r.try_get("tag_key")?,
                    value: r.try_get("tag_value")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err("read tag"))
    }

    /// Drops every tag of a deleted resource.
    pub async fn drop_tags(&self, resource_id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM tags WHERE resource_id = $1")
            .bind(resource_id.to_owned())
            .execute(self.pool())
            .await
            .map_err(err("drop tags"))?;
        Ok(())
    }
}
