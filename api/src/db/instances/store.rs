//! Storing a new reservation, and finding the one a client token made.

use super::super::tags::TagRow;
use super::super::{Db, DbError, err, placeholders};
use super::{COLUMNS, NewReservation};

impl Db {
    /// Stores a reservation, its instances, their groups and tags at once.
    pub async fn insert_reservation(&self, r: &NewReservation) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        sqlx::query(
            "INSERT INTO reservations (reservation_id, project_id, client_token, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(r.reservation_id.clone())
        .bind(r.project_id.clone())
        .bind(r.client_token.clone())
        .bind(super::super::now())
        .execute(&mut *tx)
        .await
        .map_err(err("store reservation"))?;
        for i in &r.instances {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO instances ({COLUMNS}) VALUES ({})",
                placeholders(1, 27)
            )))
            .bind(i.uuid.clone())
            .bind(i.ec2_id.clone())
            .bind(i.project_id.clone())
            .bind(i.user_id.clone())
            .bind(i.reservation_id.clone())
            .bind(i.launch_index)
            .bind(i.image_id.clone())
            .bind(i.kernel_id.clone())
            .bind(i.ramdisk_id.clone())
            .bind(i.instance_type.clone())
            .bind(i.vcpus)
            .bind(i.memory_mb)
            .bind(i.root_gb)
            .bind(i.key_name.clone())
            .bind(i.key_data.clone())
            .bind(i.user_data.clone())
            .bind(i.requested_zone.clone())
            .bind(i.availability_zone.clone())
            .bind(i.host.clone())
            .bind(i.fixed_ip.clone())
            .bind(i.state.to_string())
            .bind(i.task_state.clone())
            .bind(i.state_reason.clone())
            .bind(i.state_sequence)
            .bind(i.launched_at.clone())
            .bind(i.updated_at.clone())
            .bind(i.terminated_at.clone())
            .execute(&mut *tx)
            .await
            .map_err(err("store instance"))?;
            for (group_id, _) in &i.groups {
                sqlx::query("INSERT INTO instance_groups (uuid, group_id) VALUES ($1, $2)")
                    .bind(i.uuid.clone())
                    .bind(group_id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(err("store instance group"))?;
            }
            for (key, value) in &r.tags {
                let tag = TagRow {
                    resource_id: i.ec2_id.clone(),
                    resource_type: "instance".to_owned(),
                    key: key.clone(),
                    value: value.clone(),
                };
                super::super::tags::insert(&r.project_id, &tag)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("store instance tag"))?;
            }
        }
        tx.commit().await.map_err(err("commit reservation"))
    }

    /// The reservation a client token already made, if any.
    pub async fn reservation_by_token(
        &self,
        project_id: &str,
        token: &str,
    ) -> Result<Option<String>, DbError> {
        sqlx::query_scalar(
            "SELECT reservation_id FROM reservations WHERE project_id = $1 AND client_token = $2",
        )
        .bind(project_id.to_owned())
        .bind(token.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find client token"))
    }
}
