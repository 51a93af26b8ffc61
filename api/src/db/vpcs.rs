//! Default VPCs: each project's network (CIDR and gateway) as the network
//! controller made it, cached here.

use sqlx::Row;

use super::{Db, DbError};

/// A project's network, as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectNetworkRow {
    /// The project.
    pub project_id: String,
    /// Its network in CIDR form: its default VPC's CIDR block.
    pub cidr: String,
    /// The network's gateway.
    pub gateway: String,
}

fn row(r: &sqlx::any::AnyRow) -> Result<ProjectNetworkRow, sqlx::Error> {
    Ok(from_row!(
        r,
        ProjectNetworkRow {
            project_id,
            cidr,
            gateway
        }
    ))
}

impl Db {
    /// The project's cached network, if it was ever fetched.
    pub async fn project_network(
        &self,
        project_id: &str,
    ) -> Result<Option<ProjectNetworkRow>, DbError> {
        self.first(
            sqlx::query(
                "SELECT project_id, cidr, gateway FROM project_networks WHERE project_id = $1",
            )
            .bind(project_id.to_owned()),
            row,
            "read project network",
        )
        .await
    }

    /// Caches the project's network; a row already there (another request
    /// fetched it first) stays, as the network never changes.
    pub async fn cache_project_network(&self, n: &ProjectNetworkRow) -> Result<(), DbError> {
        let inserted = self
            .changed(
                sqlx::query(
                    "INSERT INTO project_networks (project_id, cidr, gateway, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(n.project_id.clone())
                .bind(n.cidr.clone())
                .bind(n.gateway.clone())
                .bind(super::now()),
                "cache project network",
            )
            .await;
        match inserted {
            Err(e) if e.is_unique_violation() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
