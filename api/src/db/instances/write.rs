//! Recording what happens to instances: state changes, placements and the
//! host building each placement.

use super::super::{Db, DbError, err};
use stratus_rpc::wire::conductor::InstanceState;

use super::{StateChange, StoredState, stored_state};

impl Db {
    /// An instance's stored state and fixed IP, by UUID (the conductor's
    /// one read per report).
    pub async fn instance_state(&self, uuid: &str) -> Result<Option<StoredState>, DbError> {
        let query = sqlx::query(
            "SELECT state, fixed_ip, host, attempt, task_state FROM instances WHERE uuid = $1",
        )
        .bind(uuid.to_owned());
        self.first(query, stored_state, "find instance state").await
    }

    /// Gives the build of a pending instance to `host`, atomically: only
    /// when no host holds it, its task is `scheduling` (handed back, or
    /// never placed), or `host` already holds it (a resumed build). Records
    /// the host, the higher attempt, task `networking` and the claim's
    /// sequence (kept if a newer one is stored); whether it was given.
    pub async fn claim_build(
        &self,
        uuid: &str,
        host: &str,
        attempt: i64,
        sequence: i64,
    ) -> Result<bool, DbError> {
        let query = sqlx::query(
            "UPDATE instances SET host = $1, \
             attempt = CASE WHEN attempt > $2 THEN attempt ELSE $2 END, \
             task_state = 'networking', \
             state_sequence = CASE WHEN state_sequence > $3 THEN state_sequence ELSE $3 END, \
             updated_at = $4 \
             WHERE uuid = $5 AND state = $6 \
             AND (host IS NULL OR host = $1 OR task_state = 'scheduling' OR attempt < $2)",
        )
        .bind(host.to_owned())
        .bind(attempt)
        .bind(sequence)
        .bind(super::super::now())
        .bind(uuid.to_owned())
        .bind(InstanceState::Pending.to_string());
        self.changed(query, "claim build").await
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

    /// Records a state change if it is newer than the one stored; whether it was.
    pub async fn update_state(
        &self,
        uuid: &str,
        change: &StateChange<'_>,
    ) -> Result<bool, DbError> {
        let now = super::super::now();
        let terminated = change.state.is_gone().then(|| now.clone());
        let done = sqlx::query(
            "UPDATE instances SET state = $1, task_state = $2, state_reason = $3, host = COALESCE($4, host), \
             state_sequence = $5, updated_at = $6, terminated_at = COALESCE(terminated_at, $7) \
             WHERE uuid = $8 AND state_sequence < $5",
        )
        .bind(change.state.to_string())
        .bind(change.task_state.map(str::to_owned))
        .bind(change.reason.map(str::to_owned))
        .bind(change.host.map(str::to_owned))
        .bind(change.sequence)
        .bind(now)
        .bind(terminated)
        .bind(uuid.to_owned())
        .execute(self.pool())
        .await
        .map_err(err("update instance state"))?;
        let applied = done.rows_affected() > 0;
        // Gone, by whatever path (a host's report, a build timeout, a
        // terminate before any host had it): its public addresses are freed
        // with it, so none leads to an instance that is no more.
        if applied && change.state.is_gone() {
            self.free_addresses_of(uuid).await?;
        }
        // Terminated, its network interface is deleted, and its tags with it.
        if applied && change.state == InstanceState::Terminated {
            self.drop_tags(&crate::ec2::ids::network_interface_id(uuid))
                .await?;
        }
        Ok(applied)
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
        .bind(super::super::now())
        .bind(uuid.to_owned())
        .execute(self.pool())
        .await
        .map_err(err("record instance placement"))?;
        Ok(())
    }
}
