//! Reservations and instances: what the API creates, and what the
//! conductor updates from compute hosts' reports.

use sqlx::Row;

use super::{Db, DbError, err, placeholders};

/// An instance as stored, with its security groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceRow {
    /// Canonical id (UUID).
    pub uuid: String,
    /// `i-…`.
    pub ec2_id: String,
    /// Its project.
    pub project_id: String,
    /// Who launched it.
    pub user_id: String,
    /// `r-…`.
    pub reservation_id: String,
    /// Its place in its reservation.
    pub launch_index: i64,
    /// `ami-…`.
    pub image_id: String,
    /// `aki-…`.
    pub kernel_id: Option<String>,
    /// `ari-…`.
    pub ramdisk_id: Option<String>,
    /// The instance type's name.
    pub instance_type: String,
    /// vCPUs.
    pub vcpus: i64,
    /// MiB.
    pub memory_mb: i64,
    /// GiB.
    pub root_gb: i64,
    /// Its key pair's name.
    pub key_name: Option<String>,
    /// Its key pair's public key, as launched.
    pub key_data: Option<String>,
    /// Base64 user data.
    pub user_data: Option<String>,
    /// The zone (or `zone:host`) asked for.
    pub requested_zone: Option<String>,
    /// The zone it runs in, once known.
    pub availability_zone: Option<String>,
    /// The compute host, once known.
    pub host: Option<String>,
    /// Its fixed IP, once known.
    pub fixed_ip: Option<String>,
    /// `pending`, `running`, … (the wire's state names).
    pub state: String,
    /// What is being done to it.
    pub task_state: Option<String>,
    /// Why it is in its state.
    pub state_reason: Option<String>,
    /// The newest update's sequence.
    pub state_sequence: i64,
    /// When it was launched.
    pub launched_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// When it was terminated.
    pub terminated_at: Option<String>,
    /// Its security groups: (id, name).
    pub groups: Vec<(String, String)>,
}

/// A new reservation with its instances, stored in one transaction.
#[derive(Debug, Clone)]
pub struct NewReservation {
    /// `r-…`.
    pub reservation_id: String,
    /// Its project.
    pub project_id: String,
    /// The client's idempotency token.
    pub client_token: Option<String>,
    /// Its instances (state pending).
    pub instances: Vec<InstanceRow>,
    /// Tags on every instance: (key, value).
    pub tags: Vec<(String, String)>,
}

/// The conductor's view of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// Its state.
    pub state: String,
    /// Its fixed IP, once known.
    pub fixed_ip: Option<String>,
    /// The host building or running it, once known.
    pub host: Option<String>,
    /// Which placement that host is building (0: unknown).
    pub attempt: i64,
}

/// What a project's live instances hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Instances not terminated.
    pub instances: u64,
    /// Their vCPUs.
    pub vcpus: u64,
    /// Their MiB.
    pub memory_mb: u64,
}

const COLUMNS: &str = "uuid, ec2_id, project_id, user_id, reservation_id, launch_index, image_id, kernel_id, ramdisk_id, \
    instance_type, vcpus, memory_mb, root_gb, key_name, key_data, user_data, requested_zone, availability_zone, host, \
    fixed_ip, state, task_state, state_reason, state_sequence, launched_at, updated_at, terminated_at";

/// States that hold no resources.
const GONE: &str = "('terminated', 'error')";

fn row(r: &sqlx::any::AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        uuid: r.try_get("uuid")?,
        ec2_id: r.try_get("ec2_id")?,
        project_id: r.try_get("project_id")?,
        user_id: r.try_get("user_id")?,
        reservation_id: r.try_get("reservation_id")?,
        launch_index: r.try_get("launch_index")?,
        image_id: r.try_get("image_id")?,
        kernel_id: r.try_get("kernel_id")?,
        ramdisk_id: r.try_get("ramdisk_id")?,
        instance_type: r.try_get("instance_type")?,
        vcpus: r.try_get("vcpus")?,
        memory_mb: r.try_get("memory_mb")?,
        root_gb: r.try_get("root_gb")?,
        key_name: r.try_get("key_name")?,
        key_data: r.try_get("key_data")?,
        user_data: r.try_get("user_data")?,
        requested_zone: r.try_get("requested_zone")?,
        availability_zone: r.try_get("availability_zone")?,
        host: r.try_get("host")?,
        fixed_ip: r.try_get("fixed_ip")?,
        state: r.try_get("state")?,
        task_state: r.try_get("task_state")?,
        state_reason: r.try_get("state_reason")?,
        state_sequence: r.try_get("state_sequence")?,
        launched_at: r.try_get("launched_at")?,
        updated_at: r.try_get("updated_at")?,
        terminated_at: r.try_get("terminated_at")?,
        groups: vec![],
    })
}

/// Puts each (uuid, group id, name) row on its instance, sorted by group id.
fn attach_groups(
    instances: &mut [InstanceRow],
    groups: &[sqlx::any::AnyRow],
) -> Result<(), DbError> {
    let mut by_uuid: std::collections::HashMap<String, Vec<(String, String)>> =
        std::collections::HashMap::new();
    for g in groups {
        let uuid: String = g.try_get("uuid").map_err(err("read instance group"))?;
        by_uuid.entry(uuid).or_default().push((
            g.try_get("group_id").map_err(err("read instance group"))?,
            g.try_get("name").map_err(err("read instance group"))?,
        ));
    }
    for i in instances {
        if let Some(mut groups) = by_uuid.remove(&i.uuid) {
            groups.sort();
            i.groups = groups;
        }
    }
    Ok(())
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
        .bind(super::now())
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
            .bind(i.state.clone())
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
                sqlx::query(
                    "INSERT INTO tags (resource_id, project_id, resource_type, tag_key, tag_value) VALUES ($1, $2, 'instance', $3, $4)",
                )
                .bind(i.ec2_id.clone())
                .bind(r.project_id.clone())
                .bind(key.clone())
                .bind(value.clone())
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

    /// The project's instances (terminated ones for an hour after), by id,
    /// with their groups; `ids` narrows to those EC2 ids.
    pub async fn instances(
        &self,
        project_id: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<InstanceRow>, DbError> {
        let hour_ago = humantime::format_rfc3339_millis(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
        )
        .to_string();
        let mut sql = format!(
            "SELECT {COLUMNS} FROM instances WHERE project_id = $1 \
             AND (terminated_at IS NULL OR terminated_at > $2)"
        );
        if let Some(ids) = ids {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            sql.push_str(&format!(" AND ec2_id IN ({})", placeholders(3, ids.len())));
        }
        sql.push_str(" ORDER BY ec2_id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id.to_owned())
            .bind(hour_ago);
        for id in ids.unwrap_or_default() {
            q = q.bind(id.clone());
        }
        let rows = q
            .fetch_all(self.read())
            .await
            .map_err(err("list instances"))?;
        let mut instances: Vec<InstanceRow> = rows
            .iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(err("read instance"))?;
        let groups = self.groups_of(project_id, &instances).await?;
        attach_groups(&mut instances, &groups)?;
        Ok(instances)
    }

    /// At most `limit` of the project's instances with EC2 ids after
    /// `after`, by id (DescribeInstances pages without filters).
    pub async fn instances_after(
        &self,
        project_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, DbError> {
        let hour_ago = humantime::format_rfc3339_millis(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
        )
        .to_string();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM instances WHERE project_id = $1 \
             AND (terminated_at IS NULL OR terminated_at > $2) AND ec2_id > $3 \
             ORDER BY ec2_id LIMIT $4"
        )))
        .bind(project_id.to_owned())
        .bind(hour_ago)
        .bind(after.to_owned())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.read())
        .await
        .map_err(err("page instances"))?;
        let mut instances: Vec<InstanceRow> = rows
            .iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(err("read instance"))?;
        let groups = self.groups_of(project_id, &instances).await?;
        attach_groups(&mut instances, &groups)?;
        Ok(instances)
    }

    /// The (uuid, group id, group name) rows of `instances`: all of the
    /// project's when there are many, else just theirs.
    async fn groups_of(
        &self,
        project_id: &str,
        instances: &[InstanceRow],
    ) -> Result<Vec<sqlx::any::AnyRow>, DbError> {
        if instances.is_empty() {
            return Ok(vec![]);
        }
        if instances.len() > 500 {
            return sqlx::query(
                "SELECT ig.uuid, g.group_id, g.name FROM instance_groups ig \
                 JOIN security_groups g ON g.group_id = ig.group_id WHERE g.project_id = $1",
            )
            .bind(project_id.to_owned())
            .fetch_all(self.read())
            .await
            .map_err(err("list instance groups"));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT ig.uuid, g.group_id, g.name FROM instance_groups ig \
             JOIN security_groups g ON g.group_id = ig.group_id WHERE ig.uuid IN ({})",
            placeholders(1, instances.len())
        )));
        for i in instances {
            q = q.bind(i.uuid.clone());
        }
        q.fetch_all(self.read())
            .await
            .map_err(err("list instance groups"))
    }

    /// One instance by its UUID, whatever its project.
    pub async fn instance_by_uuid(&self, uuid: &str) -> Result<Option<InstanceRow>, DbError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM instances WHERE uuid = $1"
        )))
        .bind(uuid.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find instance"))?;
        let Some(mut instance) = r
            .as_ref()
            .map(row)
            .transpose()
            .map_err(err("read instance"))?
        else {
            return Ok(None);
        };
        let groups = sqlx::query(
            "SELECT g.group_id, g.name FROM instance_groups ig JOIN security_groups g ON g.group_id = ig.group_id \
             WHERE ig.uuid = $1 ORDER BY g.group_id",
        )
        .bind(uuid.to_owned())
        .fetch_all(self.read())
        .await
        .map_err(err("list instance groups"))?;
        for g in &groups {
            instance.groups.push((
                g.try_get("group_id").map_err(err("read instance group"))?,
                g.try_get("name").map_err(err("read instance group"))?,
            ));
        }
        Ok(Some(instance))
    }

    /// An instance's stored state and fixed IP, by UUID (the conductor's
    /// one read per report).
    pub async fn instance_state(&self, uuid: &str) -> Result<Option<StoredState>, DbError> {
        let r = sqlx::query("SELECT state, fixed_ip, host, attempt FROM instances WHERE uuid = $1")
            .bind(uuid.to_owned())
            .fetch_optional(self.read())
            .await
            .map_err(err("find instance state"))?;
        r.map(|r| {
            Ok(StoredState {
                state: r.try_get("state")?,
                fixed_ip: r.try_get("fixed_ip")?,
                host: r.try_get("host")?,
                attempt: r.try_get("attempt")?,
            })
        })
        .transpose()
        .map_err(err("read instance state"))
    }

    /// Records that `host` builds the instance's placement `attempt`.
    pub async fn set_attempt(&self, uuid: &str, host: &str, attempt: i64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE instances SET host = $1, attempt = $2 WHERE uuid = $3 AND attempt < $2",
        )
        .bind(host.to_owned())
        .bind(attempt)
        .bind(uuid.to_owned())
        .execute(self.pool())
        .await
        .map_err(err("record attempt"))?;
        Ok(())
    }

    /// One instance by its EC2 id, whatever its project (operators).
    pub async fn instance_by_ec2_id(&self, ec2_id: &str) -> Result<Option<InstanceRow>, DbError> {
        let uuid: Option<String> =
            sqlx::query_scalar("SELECT uuid FROM instances WHERE ec2_id = $1")
                .bind(ec2_id.to_owned())
                .fetch_optional(self.read())
                .await
                .map_err(err("find instance"))?;
        match uuid {
            Some(uuid) => self.instance_by_uuid(&uuid).await,
            None => Ok(None),
        }
    }

    /// The live instance holding `address`, if any (the metadata service).
    pub async fn instance_by_fixed_ip(
        &self,
        address: &str,
    ) -> Result<Option<InstanceRow>, DbError> {
        let uuid: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT uuid FROM instances WHERE fixed_ip = $1 AND state NOT IN {GONE} ORDER BY updated_at DESC LIMIT 1"
        )))
        .bind(address.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find instance by address"))?;
        match uuid {
            Some(uuid) => self.instance_by_uuid(&uuid).await,
            None => Ok(None),
        }
    }

    /// Records a state change if it is newer than the one stored; whether it was.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_state(
        &self,
        uuid: &str,
        state: &str,
        task_state: Option<&str>,
        reason: Option<&str>,
        host: Option<&str>,
        sequence: i64,
    ) -> Result<bool, DbError> {
        let now = super::now();
        let terminated = matches!(state, "terminated" | "error").then(|| now.clone());
        let done = sqlx::query(
            "UPDATE instances SET state = $1, task_state = $2, state_reason = $3, host = COALESCE($4, host), \
             state_sequence = $5, updated_at = $6, terminated_at = COALESCE(terminated_at, $7) \
             WHERE uuid = $8 AND state_sequence < $5",
        )
        .bind(state.to_owned())
        .bind(task_state.map(str::to_owned))
        .bind(reason.map(str::to_owned))
        .bind(host.map(str::to_owned))
        .bind(sequence)
        .bind(now)
        .bind(terminated)
        .bind(uuid.to_owned())
        .execute(self.pool())
        .await
        .map_err(err("update instance state"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Records where an instance runs and its address.
    pub async fn set_placement(
        &self,
        uuid: &str,
        fixed_ip: &str,
        availability_zone: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE instances SET fixed_ip = $1, availability_zone = $2, updated_at = $3 WHERE uuid = $4",
        )
        .bind(fixed_ip.to_owned())
        .bind(availability_zone.to_owned())
        .bind(super::now())
        .bind(uuid.to_owned())
        .execute(self.pool())
        .await
        .map_err(err("record instance placement"))?;
        Ok(())
    }

    /// Pending instances with no news since `before` (an RFC 3339 time, as
    /// `updated_at` holds), all projects: (uuid, host).
    pub async fn pending_since(
        &self,
        before: &str,
    ) -> Result<Vec<(String, Option<String>)>, DbError> {
        let rows = sqlx::query(
            "SELECT uuid, host FROM instances WHERE state = 'pending' AND updated_at < $1",
        )
        .bind(before.to_owned())
        .fetch_all(self.read())
        .await
        .map_err(err("find stuck builds"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("uuid")?, r.try_get("host")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err("read stuck builds"))
    }

    /// Instances by stored state, all projects (the metrics).
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM instances GROUP BY state")
            .fetch_all(self.read())
            .await
            .map_err(err("count instances"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err("read counts"))
    }

    /// What the project's live instances hold, for quotas.
    pub async fn usage(&self, project_id: &str) -> Result<Usage, DbError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(vcpus), 0) AS BIGINT) AS vcpus, CAST(COALESCE(SUM(memory_mb), 0) AS BIGINT) AS memory_mb \
             FROM instances WHERE project_id = $1 AND state NOT IN {GONE}"
        )))
        .bind(project_id.to_owned())
        .fetch_one(self.read())
        .await
        .map_err(err("sum usage"))?;
        let get = |name: &str| -> Result<u64, DbError> {
            let v: i64 = r.try_get(name).map_err(err("read usage"))?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        Ok(Usage {
            instances: get("n")?,
            vcpus: get("vcpus")?,
            memory_mb: get("memory_mb")?,
        })
    }
}
