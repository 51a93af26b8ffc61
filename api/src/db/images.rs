//! Registered images: machine images (`ami-`), kernels (`aki-`) and
//! ramdisks (`ari-`), each a file on a path compute hosts can read.

use sqlx::Row;

use super::{Db, DbError, err};

/// A registered image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// `ami-…`, `aki-…` or `ari-…`.
    pub image_id: String,
    /// The owning project.
    pub project_id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The file's path.
    pub location: String,
    /// `machine`, `kernel` or `ramdisk`.
    pub image_type: String,
    /// The kernel a machine image boots with.
    pub kernel_id: Option<String>,
    /// Its ramdisk.
    pub ramdisk_id: Option<String>,
    /// `x86_64`, …
    pub architecture: String,
    /// Visible to every project.
    pub is_public: bool,
    /// `available`.
    pub state: String,
    /// When it was registered.
    pub created_at: String,
}

impl ImageRow {
    /// A private, available x86_64 machine image of `project_id` at
    /// `location`, registered now, with no kernel or ramdisk.
    pub fn machine(image_id: &str, project_id: &str, name: &str, location: &str) -> Self {
        Self {
            image_id: image_id.to_owned(),
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            description: None,
            location: location.to_owned(),
            image_type: "machine".into(),
            kernel_id: None,
            ramdisk_id: None,
            architecture: "x86_64".into(),
            is_public: false,
            state: "available".into(),
            created_at: super::now(),
        }
    }
}

const COLUMNS: &str = "image_id, project_id, name, description, location, image_type, kernel_id, ramdisk_id, architecture, is_public, state, created_at";

fn row(r: &sqlx::any::AnyRow) -> Result<ImageRow, sqlx::Error> {
    Ok(from_row!(
        r,
        ImageRow {
            image_id, project_id, name, description, location, image_type, kernel_id,
            ramdisk_id, architecture, state, created_at,
        },
        is_public: r.try_get::<i64, _>("is_public")? != 0,
    ))
}

impl Db {
    /// Registers an image.
    pub async fn insert_image(&self, i: &ImageRow) -> Result<(), DbError> {
        let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO images ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )));
        let insert = bind_fields!(
            insert,
            i,
            [
                image_id,
                project_id,
                name,
                description,
                location,
                image_type,
                kernel_id,
                ramdisk_id,
                architecture
            ]
        )
        .bind(i64::from(i.is_public));
        bind_fields!(insert, i, [state, created_at])
            .execute(self.pool())
            .await
            .map_err(err("register image"))?;
        Ok(())
    }

    /// Images the project may see: its own and public ones.
    pub async fn images(&self, project_id: &str) -> Result<Vec<ImageRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE project_id = $1 OR is_public = 1 ORDER BY image_id"
        )))
        .bind(project_id.to_owned());
        self.all(query, row, "list images").await
    }

    /// One image the project may see.
    pub async fn image(
        &self,
        project_id: &str,
        image_id: &str,
    ) -> Result<Option<ImageRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE image_id = $1 AND (project_id = $2 OR is_public = 1)"
        )))
        .bind(image_id.to_owned())
        .bind(project_id.to_owned());
        self.first(query, row, "find image").await
    }

    /// Any image with this name and type, whoever owns it (for `stratus image import`).
    pub async fn image_named(
        &self,
        name: &str,
        image_type: &str,
    ) -> Result<Option<ImageRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE name = $1 AND image_type = $2 ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(name.to_owned())
        .bind(image_type.to_owned());
        self.first(query, row, "find image by name").await
    }

    /// Deregisters an image the project owns; whether it did.
    pub async fn delete_image(&self, project_id: &str, image_id: &str) -> Result<bool, DbError> {
        let query = sqlx::query("DELETE FROM images WHERE image_id = $1 AND project_id = $2")
            .bind(image_id.to_owned())
            .bind(project_id.to_owned());
        self.changed(query, "deregister image").await
    }
}
