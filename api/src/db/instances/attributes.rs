//! The instance attributes ModifyInstanceAttribute changes, as stored, and
//! the writes that change them (the type and user data only while stopped).

use sqlx::Row;
use stratus_rpc::wire::compute::Flavor;
use stratus_rpc::wire::conductor::InstanceState;

use super::super::{Db, DbError, err};

/// What an instance does when its guest shuts itself down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShutdownBehavior {
    /// It is stopped (EC2's default).
    #[default]
    Stop,
    /// It is terminated.
    Terminate,
}

impl std::fmt::Display for ShutdownBehavior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stop => "stop",
            Self::Terminate => "terminate",
        })
    }
}

/// A shutdown behaviour that is neither `stop` nor `terminate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown shutdown behaviour {0:?}")]
pub struct UnknownBehavior(pub String);

impl std::str::FromStr for ShutdownBehavior {
    type Err = UnknownBehavior;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stop" => Ok(Self::Stop),
            "terminate" => Ok(Self::Terminate),
            other => Err(UnknownBehavior(other.to_owned())),
        }
    }
}

/// The attributes an instance keeps beside its launch: set at launch,
/// changed by ModifyInstanceAttribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceAttributes {
    /// Termination protection: TerminateInstances refuses it.
    pub disable_api_termination: bool,
    /// What a shutdown from inside the guest does.
    pub shutdown_behavior: ShutdownBehavior,
    /// Whether the host drops what the guest sends from addresses not its own.
    pub source_dest_check: bool,
}

impl Default for InstanceAttributes {
    /// EC2's defaults: unprotected, stops on shutdown, checked.
    fn default() -> Self {
        Self {
            disable_api_termination: false,
            shutdown_behavior: ShutdownBehavior::Stop,
            source_dest_check: true,
        }
    }
}

/// The attributes of a stored instance row.
pub(super) fn read(r: &sqlx::any::AnyRow) -> Result<InstanceAttributes, sqlx::Error> {
    let behavior: String = r.try_get("shutdown_behavior")?;
    Ok(InstanceAttributes {
        disable_api_termination: r.try_get::<i64, _>("disable_api_termination")? != 0,
        shutdown_behavior: behavior
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        source_dest_check: r.try_get::<i64, _>("source_dest_check")? != 0,
    })
}

impl Db {
    /// Stores the instance's attributes; whether it was there.
    pub async fn set_attributes(
        &self,
        uuid: &str,
        attributes: &InstanceAttributes,
    ) -> Result<bool, DbError> {
        let query = sqlx::query(
            "UPDATE instances SET disable_api_termination = $1, shutdown_behavior = $2, \
             source_dest_check = $3, updated_at = $4 WHERE uuid = $5",
        )
        .bind(i64::from(attributes.disable_api_termination))
        .bind(attributes.shutdown_behavior.to_string())
        .bind(i64::from(attributes.source_dest_check))
        .bind(super::super::now())
        .bind(uuid.to_owned());
        self.changed(query, "store instance attributes").await
    }

    /// Turns the instance's source/destination check on or off, leaving its
    /// other attributes as they are; whether it was there.
    pub async fn set_source_dest_check(&self, uuid: &str, checked: bool) -> Result<bool, DbError> {
        let query = sqlx::query(
            "UPDATE instances SET source_dest_check = $1, updated_at = $2 WHERE uuid = $3",
        )
        .bind(i64::from(checked))
        .bind(super::super::now())
        .bind(uuid.to_owned());
        self.changed(query, "store the source/destination check")
            .await
    }

    /// Gives a stopped instance a new type; whether it was stopped (a start
    /// racing the change leaves it untouched).
    pub async fn set_instance_type(&self, uuid: &str, flavor: &Flavor) -> Result<bool, DbError> {
        let query = sqlx::query(
            "UPDATE instances SET instance_type = $1, vcpus = $2, memory_mb = $3, root_gb = $4, \
             updated_at = $5 WHERE uuid = $6 AND state = $7",
        )
        .bind(flavor.name.clone())
        .bind(i64::from(flavor.vcpus))
        .bind(i64::try_from(flavor.memory_mb).unwrap_or(i64::MAX))
        .bind(i64::try_from(flavor.root_gb).unwrap_or(i64::MAX))
        .bind(super::super::now())
        .bind(uuid.to_owned())
        .bind(InstanceState::Stopped.to_string());
        self.changed(query, "change instance type").await
    }

    /// Gives a stopped instance new user data (base64, or none); whether
    /// it was stopped.
    pub async fn set_user_data(
        &self,
        uuid: &str,
        user_data: Option<&str>,
    ) -> Result<bool, DbError> {
        let query = sqlx::query(
            "UPDATE instances SET user_data = $1, updated_at = $2 WHERE uuid = $3 AND state = $4",
        )
        .bind(user_data.map(str::to_owned))
        .bind(super::super::now())
        .bind(uuid.to_owned())
        .bind(InstanceState::Stopped.to_string());
        self.changed(query, "change user data").await
    }

    /// Replaces the instance's security groups with `group_ids`, at once.
    pub async fn set_instance_groups(
        &self,
        uuid: &str,
        group_ids: &[String],
    ) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        sqlx::query("DELETE FROM instance_groups WHERE uuid = $1")
            .bind(uuid.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(err("clear instance groups"))?;
        for group_id in group_ids {
            sqlx::query("INSERT INTO instance_groups (uuid, group_id) VALUES ($1, $2)")
                .bind(uuid.to_owned())
                .bind(group_id.clone())
                .execute(&mut *tx)
                .await
                .map_err(err("store instance group"))?;
        }
        tx.commit().await.map_err(err("commit instance groups"))
    }
}
