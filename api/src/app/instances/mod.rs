//! Instances: launching them, what users ask of them (terminate, stop,
//! start, reboot, console), and what hosts report about them. Every state
//! change goes through [`InstanceState::transition`] and is written here.

pub mod attributes;
pub mod build_timeout;
mod claims;
mod lifecycle;
pub mod recovery;
mod reports;
pub mod request;
mod run;

pub use claims::{claim_build, instance_states};
pub use lifecycle::{Ask, NO_ROOM, StateChanged, ask, console_output};
pub use reports::record_report;
pub use run::{Launch, Launched, run};

use stratus_rpc::RpcError;
use stratus_rpc::wire::compute::InstanceRef;
use stratus_rpc::wire::conductor::{
    InstanceEvent, InstanceState, InvalidTransition, next_sequence,
};
use stratus_rpc::wire::ids::{HostName, InstanceId};

use super::quota::QuotaError;
use super::security_groups::GroupError;
use crate::db::instances::{InstanceRow, StateChange};
use crate::db::{Db, DbError};

/// Why an instance operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The instance's state does not allow what was asked.
    #[error("instance {instance} cannot take this request now")]
    IncorrectState {
        /// Its EC2 id.
        instance: String,
        /// The refused move.
        #[source]
        source: InvalidTransition,
    },
    /// The instance's host could not be asked.
    #[error("instance {instance}: its host could not be asked")]
    HostUnreachable {
        /// Its EC2 id.
        instance: String,
        /// The bus's error (boxed: it is large).
        #[source]
        source: Box<RpcError>,
    },
    /// The scheduler could not be given the reservation's instances; they
    /// were put in error.
    #[error("reservation {reservation}: the instances could not be scheduled")]
    NotScheduled {
        /// The reservation.
        reservation: String,
        /// The bus's error (boxed: it is large).
        #[source]
        source: Box<RpcError>,
    },
    /// The instance's host has no room for its (new) type: it stays stopped.
    #[error("instance {instance}: its host has no room for type {instance_type}")]
    InsufficientCapacity {
        /// Its EC2 id.
        instance: String,
        /// Its type.
        instance_type: String,
    },
    /// The instance is protected from termination (`disableApiTermination`).
    #[error("instance {instance} is protected from termination")]
    Protected {
        /// Its EC2 id.
        instance: String,
    },
    /// The private IP address asked for is held, or was asked for, by a
    /// live instance of the project.
    #[error("address {address} is held by instance {holder}")]
    AddressInUse {
        /// The address asked for.
        address: std::net::Ipv4Addr,
        /// The instance holding it (EC2 id).
        holder: String,
    },
    /// The launch does not fit the project's quotas.
    #[error("the launch exceeds the project's quota")]
    Quota(#[source] QuotaError),
    /// A security group could not be read or sent.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The next sequence as stored.
fn sequence() -> i64 {
    i64::try_from(next_sequence()).unwrap_or(i64::MAX)
}

/// Records that `i` is now `state`, with what is being done to it.
async fn record(
    db: &Db,
    i: &InstanceRow,
    state: InstanceState,
    task_state: Option<&str>,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let change = StateChange {
        task_state,
        reason,
        ..StateChange::to(state, sequence())
    };
    db.update_state(&i.uuid, &change).await
}

/// The host holding `i` and how to name `i` to it, once a host has it.
fn placed(i: &InstanceRow) -> Option<(HostName, InstanceRef)> {
    let host: HostName = i.host.as_deref()?.parse().ok()?;
    let instance_id: InstanceId = i.uuid.parse().ok()?;
    Some((host, InstanceRef { instance_id }))
}

/// `IncorrectState` for `i` refusing `event`.
fn incorrect(i: &InstanceRow, event: InstanceEvent) -> InstanceError {
    InstanceError::IncorrectState {
        instance: i.ec2_id.clone(),
        source: InvalidTransition {
            state: i.state,
            event,
        },
    }
}

/// `HostUnreachable` for `i`.
fn host_unreachable(i: &InstanceRow) -> impl FnOnce(RpcError) -> InstanceError + '_ {
    |source| InstanceError::HostUnreachable {
        instance: i.ec2_id.clone(),
        source: Box::new(source),
    }
}
