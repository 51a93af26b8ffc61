//! What compute hosts report to the api service's conductor.

use serde::{Deserialize, Serialize};

use super::ids::{HostName, InstanceId};
pub use super::instance_state::{InstanceEvent, InstanceState, InvalidTransition, UnknownState};

/// A state change of one instance, cast to `conductor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceUpdate {
    /// The instance.
    pub instance_id: InstanceId,
    /// The host reporting; none when the scheduler reports (no host found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostName>,
    /// Its new state.
    pub state: InstanceState,
    /// What the worker is doing (`networking`, `spawning`, …), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_state: Option<String>,
    /// Why it is in this state, when that is not obvious (errors above all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Increases with every update a worker sends: updates are handled
    /// concurrently and may arrive out of order, so the conductor keeps the
    /// one with the highest sequence.
    #[serde(default)]
    pub sequence: u64,
    /// Which placement of the instance the reporting host is building (the
    /// number of hosts tried, this one included; 0 when unknown). A report
    /// from another host for the same placement is a duplicate build.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The next update sequence: microseconds since the epoch, bumped so two
/// updates from one process never share one, and a restarted service keeps
/// counting upward.
pub fn next_sequence() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// What the metadata service needs to answer an instance, cast by its
/// compute host once the instance has its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMetadata {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its fixed IP, by which its requests are recognised.
    pub fixed_ip: std::net::Ipv4Addr,
    /// Its image.
    pub ami_id: String,
    /// Its reservation.
    #[serde(default)]
    pub reservation_id: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// Its security groups.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Its key pair's name and public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<(String, String)>,
    /// Its user data, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

/// A compute host asking to build one placement of an instance, before it
/// touches anything: the conductor grants each placement to one host, so a
/// request delivered twice (a redelivery, a re-cast after a restart) is
/// built once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildClaim {
    /// The instance.
    pub instance_id: InstanceId,
    /// The host asking.
    pub host: HostName,
    /// Which placement (as [`InstanceUpdate::attempt`]).
    pub attempt: u32,
    /// Ordered with the host's reports, as [`InstanceUpdate::sequence`].
    pub sequence: u64,
}

/// The conductor's answer to a [`BuildClaim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ClaimAnswer {
    /// Build it: the instance is pending and this host holds its placement.
    Granted,
    /// Do not build it; remove anything of it here.
    Refused {
        /// Why (for the log).
        reason: String,
        /// Whether the instance's fixed IP may be released: true when the
        /// instance is gone, false when another host holds it (the address
        /// is per instance, so that host's guest has it).
        release_address: bool,
    },
}

/// The instances a host asks about, to reconcile what it holds with what
/// the database says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatesQuery {
    /// The instances.
    pub ids: Vec<InstanceId>,
}

/// What the database says of one instance asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownInstance {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its state; none when the database has no such instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
    /// The host holding it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostName>,
    /// Its placement number (as [`InstanceUpdate::attempt`]).
    #[serde(default)]
    pub attempt: u32,
}
