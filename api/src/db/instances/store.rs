//! Storing a new reservation, and finding the one a client token made.

use super::super::tags::TagRow;
use super::super::{Bound, Db, DbError, err, placeholders};
use super::{COLUMNS, InstanceRow, NewReservation};

/// The statement that stores instance `i` (its groups and tags apart).
fn insert_instance(i: &InstanceRow) -> Bound {
    let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO instances ({COLUMNS}) VALUES ({})",
        placeholders(1, 31)
    )));
    bind_fields!(
        insert,
        i,
        [
            uuid,
            ec2_id,
            project_id,
            user_id,
            reservation_id,
            launch_index,
            image_id,
            kernel_id,
            ramdisk_id,
            instance_type,
            vcpus,
            memory_mb,
            root_gb,
            key_name,
            key_data,
            user_data,
            requested_zone,
            availability_zone,
            host,
            fixed_ip,
            task_state,
            state_reason,
            state_sequence,
            launched_at,
            updated_at,
            terminated_at
        ]
    )
    .bind(i64::from(i.wants_public_ip))
    .bind(i64::from(i.attributes.disable_api_termination))
    .bind(i.attributes.shutdown_behavior.to_string())
    .bind(i64::from(i.attributes.source_dest_check))
    .bind(i.state.to_string())
}

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
            insert_instance(i)
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
