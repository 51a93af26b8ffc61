//! Reading instances: a project's, one by id or address, and the sums the
//! quotas and metrics need.

use sqlx::Row;
use sqlx::any::AnyRow;
use stratus_rpc::wire::conductor::InstanceState;

use super::super::{Db, DbError, err, placeholders};
use super::{
    InstanceRow, SELECTED, StoredState, Usage, attach_groups, gone, row, state, stored_state,
};

/// How long terminated instances stay listed.
const SHOWN_AFTER_TERMINATION: std::time::Duration = std::time::Duration::from_secs(3600);

/// The oldest termination time still listed, as stored.
fn shown_since() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() - SHOWN_AFTER_TERMINATION)
        .to_string()
}

impl Db {
    /// The project's instances (terminated ones for an hour after), by id,
    /// with their groups; `ids` narrows to those EC2 ids.
    pub async fn instances(
        &self,
        project_id: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<InstanceRow>, DbError> {
        let mut sql = format!(
            "SELECT {SELECTED} FROM instances WHERE project_id = $1 \
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
            .bind(shown_since());
        for id in ids.unwrap_or_default() {
            q = q.bind(id.clone());
        }
        let rows = q
            .fetch_all(self.read())
            .await
            .map_err(err("list instances"))?;
        self.with_groups(project_id, &rows).await
    }

    /// At most `limit` of the project's instances with EC2 ids after
    /// `after`, by id (DescribeInstances pages without filters).
    pub async fn instances_after(
        &self,
        project_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<InstanceRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECTED} FROM instances WHERE project_id = $1 \
             AND (terminated_at IS NULL OR terminated_at > $2) AND ec2_id > $3 \
             ORDER BY ec2_id LIMIT $4"
        )))
        .bind(project_id.to_owned())
        .bind(shown_since())
        .bind(after.to_owned())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.read())
        .await
        .map_err(err("page instances"))?;
        self.with_groups(project_id, &rows).await
    }

    /// Instance rows as [`InstanceRow`]s with their security groups.
    async fn with_groups(
        &self,
        project_id: &str,
        rows: &[AnyRow],
    ) -> Result<Vec<InstanceRow>, DbError> {
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
    ) -> Result<Vec<AnyRow>, DbError> {
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
            "SELECT {SELECTED} FROM instances WHERE uuid = $1"
        )))
        .bind(uuid.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find instance"))?;
        let Some(r) = r else {
            return Ok(None);
        };
        let project_id: String = r.try_get("project_id").map_err(err("read instance"))?;
        Ok(self
            .with_groups(&project_id, std::slice::from_ref(&r))
            .await?
            .pop())
    }

    /// One instance by its EC2 id, whatever its project (operators).
    pub async fn instance_by_ec2_id(&self, ec2_id: &str) -> Result<Option<InstanceRow>, DbError> {
        let uuid = sqlx::query_scalar("SELECT uuid FROM instances WHERE ec2_id = $1")
            .bind(ec2_id.to_owned())
            .fetch_optional(self.read())
            .await
            .map_err(err("find instance"))?;
        self.instance_by_found_uuid(uuid).await
    }

    /// The live instance holding `address`, if any (the metadata service).
    pub async fn instance_by_fixed_ip(
        &self,
        address: &str,
    ) -> Result<Option<InstanceRow>, DbError> {
        let uuid = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT uuid FROM instances WHERE fixed_ip = $1 AND state NOT IN {} ORDER BY updated_at DESC LIMIT 1",
            gone()
        )))
        .bind(address.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find instance by address"))?;
        self.instance_by_found_uuid(uuid).await
    }

    async fn instance_by_found_uuid(
        &self,
        uuid: Option<String>,
    ) -> Result<Option<InstanceRow>, DbError> {
        match uuid {
            Some(uuid) => self.instance_by_uuid(&uuid).await,
            None => Ok(None),
        }
    }

    /// Pending instances with no news since `before` (an RFC 3339 time, as
    /// `updated_at` holds), all projects: (uuid, host).
    pub async fn pending_since(
        &self,
        before: &str,
    ) -> Result<Vec<(String, Option<String>)>, DbError> {
        let query =
            sqlx::query("SELECT uuid, host FROM instances WHERE state = $1 AND updated_at < $2")
                .bind(InstanceState::Pending.to_string())
                .bind(before.to_owned());
        let row = |r: &AnyRow| Ok((r.try_get("uuid")?, r.try_get("host")?));
        self.all(query, row, "find stuck builds").await
    }

    /// The stored state of each of `uuids` the database has: (uuid, state).
    pub async fn stored_states(
        &self,
        uuids: &[String],
    ) -> Result<Vec<(String, StoredState)>, DbError> {
        let mut found = Vec::with_capacity(uuids.len());
        // Well under every database's limit on bound values.
        for chunk in uuids.chunks(500) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT uuid, state, fixed_ip, host, attempt, task_state FROM instances WHERE uuid IN ({})",
                placeholders(1, chunk.len())
            )));
            for uuid in chunk {
                query = query.bind(uuid.clone());
            }
            let row = |r: &AnyRow| Ok((r.try_get("uuid")?, stored_state(r)?));
            found.extend(self.all(query, row, "find instance states").await?);
        }
        Ok(found)
    }

    /// UUIDs of instances in `state` (and `task_state`, when given) with no
    /// news since `before` (an RFC 3339 time; none: any), all projects.
    pub async fn uuids_in_state(
        &self,
        state: InstanceState,
        task_state: Option<&str>,
        before: Option<&str>,
    ) -> Result<Vec<String>, DbError> {
        let mut sql = "SELECT uuid FROM instances WHERE state = $1".to_owned();
        let mut next = 2;
        for (column, value, op) in [("task_state", task_state, "="), ("updated_at", before, "<")] {
            if value.is_some() {
                sql.push_str(&format!(" AND {column} {op} ${next}"));
                next += 1;
            }
        }
        sql.push_str(" ORDER BY launched_at");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(state.to_string());
        for value in [task_state, before].into_iter().flatten() {
            query = query.bind(value.to_owned());
        }
        self.all(query, |r| r.try_get("uuid"), "find instances by state")
            .await
    }

    /// Instances by stored state, all projects (the metrics).
    pub async fn count_by_state(&self) -> Result<Vec<(InstanceState, i64)>, DbError> {
        let query = sqlx::query("SELECT state, COUNT(*) AS n FROM instances GROUP BY state");
        let row = |r: &AnyRow| Ok((state(r.try_get("state")?)?, r.try_get("n")?));
        self.all(query, row, "count instances").await
    }

    /// What the project's live instances hold, for quotas.
    pub async fn usage(&self, project_id: &str) -> Result<Usage, DbError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(vcpus), 0) AS BIGINT) AS vcpus, CAST(COALESCE(SUM(memory_mb), 0) AS BIGINT) AS memory_mb \
             FROM instances WHERE project_id = $1 AND state NOT IN {}",
            gone()
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
