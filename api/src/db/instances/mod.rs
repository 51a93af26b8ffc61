//! Reservations and instances: what the API creates, and what the
//! conductor updates from compute hosts' reports. The rows and their
//! mapping live here; the queries in the files named for what they do.

mod attributes;
mod read;
mod store;
mod write;

pub use attributes::{InstanceAttributes, ShutdownBehavior};

use sqlx::Row;
use stratus_rpc::wire::conductor::InstanceState;

use super::{DbError, err};

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
    /// Its lifecycle state.
    pub state: InstanceState,
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
    /// Whether it launched wanting a public address.
    pub wants_public_ip: bool,
    /// Its public address, if it has one (read from the addresses table).
    pub public_ip: Option<String>,
    /// What ModifyInstanceAttribute changes.
    pub attributes: InstanceAttributes,
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
    pub state: InstanceState,
    /// Its fixed IP, once known.
    pub fixed_ip: Option<String>,
    /// The host building or running it, once known.
    pub host: Option<String>,
    /// Which placement that host is building (0: unknown).
    pub attempt: i64,
    /// What is being done to it (`scheduling`: no host builds it now).
    pub task_state: Option<String>,
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

/// The stored columns; `state` last, as the insert binds it apart.
const COLUMNS: &str = "uuid, ec2_id, project_id, user_id, reservation_id, launch_index, image_id, kernel_id, ramdisk_id, \
    instance_type, vcpus, memory_mb, root_gb, key_name, key_data, user_data, requested_zone, availability_zone, host, \
    fixed_ip, task_state, state_reason, state_sequence, launched_at, updated_at, terminated_at, wants_public_ip, disable_api_termination, shutdown_behavior, source_dest_check, state";

/// The columns read: the stored ones and the instance's public address.
const SELECTED: &str = "uuid, ec2_id, project_id, user_id, reservation_id, launch_index, image_id, kernel_id, ramdisk_id, \
    instance_type, vcpus, memory_mb, root_gb, key_name, key_data, user_data, requested_zone, availability_zone, host, \
    fixed_ip, task_state, state_reason, state_sequence, launched_at, updated_at, terminated_at, wants_public_ip, disable_api_termination, shutdown_behavior, source_dest_check, state, \
    (SELECT a.public_ip FROM addresses a WHERE a.instance_uuid = instances.uuid) AS public_ip";

/// States that hold no resources, as an SQL list.
pub(crate) fn gone() -> String {
    let names: Vec<String> = InstanceState::ALL
        .into_iter()
        .filter(|s| s.is_gone())
        .map(|s| format!("'{s}'"))
        .collect();
    format!("({})", names.join(", "))
}

/// A state change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange<'a> {
    /// The new state.
    pub state: InstanceState,
    /// What is being done to it now.
    pub task_state: Option<&'a str>,
    /// Why it is in this state.
    pub reason: Option<&'a str>,
    /// The host reporting, when one does.
    pub host: Option<&'a str>,
    /// The change's sequence: older changes than the stored one are dropped.
    pub sequence: i64,
}

impl StateChange<'_> {
    /// A change to `state` with sequence `sequence` and nothing else.
    pub fn to(state: InstanceState, sequence: i64) -> Self {
        Self {
            state,
            task_state: None,
            reason: None,
            host: None,
            sequence,
        }
    }
}

/// A stored state name as the enum.
fn state(name: String) -> Result<InstanceState, sqlx::Error> {
    name.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A [`StoredState`] from a row with its columns.
fn stored_state(r: &sqlx::any::AnyRow) -> Result<StoredState, sqlx::Error> {
    Ok(StoredState {
        state: state(r.try_get("state")?)?,
        fixed_ip: r.try_get("fixed_ip")?,
        host: r.try_get("host")?,
        attempt: r.try_get("attempt")?,
        task_state: r.try_get("task_state")?,
    })
}

fn row(r: &sqlx::any::AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(from_row!(
        r,
        InstanceRow {
            uuid, ec2_id, project_id, user_id, reservation_id, launch_index, image_id,
            kernel_id, ramdisk_id, instance_type, vcpus, memory_mb, root_gb, key_name,
            key_data, user_data, requested_zone, availability_zone, host, fixed_ip,
            task_state, state_reason, state_sequence, launched_at, updated_at, terminated_at,
        },
        state: state(r.try_get("state")?)?,
        groups: vec![],
        wants_public_ip: r.try_get::<i64, _>("wants_public_ip")? != 0,
        public_ip: r.try_get("public_ip")?,
        attributes: attributes::read(r)?,
    ))
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
