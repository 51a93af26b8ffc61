//! The compute manager: what a worker does to the instances of its host.
//! `build.rs` runs `run_instance`; `lifecycle.rs` the rest of an instance's
//! life; `periodic.rs` power sync, start-up recovery and capacity reports;
//! `interrupted.rs` the builds a restart cut short.

mod build;
mod build_steps;
mod claims;
mod clean_up;
mod enabled;
mod interrupted;
mod lifecycle;
mod outbox;
mod periodic;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use stratus_host::bridge::Bridges;
use stratus_host::firewall::Firewall;
use stratus_host::locks::KeyedLocks;
use stratus_rpc::RequestContext;
use stratus_rpc::clients::{ConductorClient, NetworkClient, SchedulerClient};
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::{Flavor, RunInstance};
use stratus_rpc::wire::conductor::{InstanceState, InstanceUpdate, next_sequence};
use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::network::FixedIp;
use tracing::warn;

pub use build::{BuildError, BuildTimings};

use crate::driver::VirtDriver;
use crate::image_cache::ImageCache;
use crate::instance_dir::InstanceDir;

/// Gives the guest what it needs before it boots (SSH key in its disk, a
/// config drive). Builds always call it, after the disk and the address exist.
#[async_trait]
pub trait PrepareDisk: Send + Sync + std::fmt::Debug {
    /// Prepares the instance in `dir`; returns the config drive to attach,
    /// if any. An error fails the build, with it as the reason's cause.
    async fn prepare_disk(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
        fixed: &FixedIp,
    ) -> Result<Option<PathBuf>, PrepareError>;

    /// Undoes what a `prepare_disk` cut short by a dying worker left in the
    /// instance folder `root` (mounts, exposed devices, the daemons behind
    /// them).
    async fn release_leftovers(&self, root: &std::path::Path);
}

/// Why a disk could not be prepared (an injection or config drive error).
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// The clients and host parts a manager works with.
#[derive(Debug)]
pub struct Parts {
    /// This host's name.
    pub host: HostName,
    /// This host's availability zone.
    pub availability_zone: String,
    /// Where instance folders and `_base` live.
    pub instances_dir: PathBuf,
    /// Where whether this host takes new instances is kept across restarts.
    pub host_state_file: PathBuf,
    /// The hypervisor.
    pub driver: Arc<dyn VirtDriver>,
    /// Base images.
    pub images: ImageCache,
    /// The host firewall.
    pub firewall: Arc<Firewall>,
    /// Bridges and VLANs on this host.
    pub bridges: Arc<Bridges>,
    /// The physical interface VLANs sit on.
    pub vlan_interface: String,
    /// The network controller.
    pub network: NetworkClient,
    /// Where state changes are reported.
    pub conductor: ConductorClient,
    /// Where capacity is reported.
    pub scheduler: SchedulerClient,
    /// The disk preparation hook.
    pub prepare: Arc<dyn PrepareDisk>,
    /// Settings.
    pub config: crate::config::ComputeConfig,
    /// What tenant isolation lacks on this host, when the operator chose
    /// to start without it (`insecure_allow_unisolated`); said on every launch.
    pub unisolated: Option<String>,
}

/// Runs the instances of one host.
#[derive(Debug)]
pub struct ComputeManager {
    parts: Parts,
    /// One lock per instance: its operations run one at a time.
    locks: KeyedLocks<InstanceId>,
    /// The flavors of instances on this host, for capacity reports.
    flavors: Mutex<HashMap<InstanceId, Flavor>>,
    /// The state last reported per instance, for power sync.
    last_states: Mutex<HashMap<InstanceId, InstanceState>>,
    /// Whether this host takes new instances, and why not.
    enabled: Mutex<enabled::HostEnabled>,
    /// Which placement of each instance this host is building.
    attempts: Mutex<HashMap<InstanceId, u32>>,
    /// Reports and releases to send again once the broker is back.
    outbox: outbox::Outbox,
    /// Builds a restart interrupted, until their request comes back.
    interrupted: interrupted::Interrupted,
}

impl ComputeManager {
    /// A manager over `parts`.
    pub fn new(parts: Parts) -> Arc<Self> {
        Arc::new(Self {
            parts,
            locks: KeyedLocks::new(),
            flavors: Mutex::new(HashMap::new()),
            last_states: Mutex::new(HashMap::new()),
            enabled: Mutex::new(enabled::HostEnabled::default()),
            attempts: Mutex::new(HashMap::new()),
            outbox: outbox::Outbox::default(),
            interrupted: interrupted::Interrupted::default(),
        })
    }

    /// The hypervisor driver.
    pub fn driver(&self) -> &Arc<dyn VirtDriver> {
        &self.parts.driver
    }

    /// This host's firewall.
    pub fn firewall(&self) -> &Arc<Firewall> {
        &self.parts.firewall
    }

    /// The folder of an instance.
    pub fn dir(&self, id: &InstanceId) -> InstanceDir {
        InstanceDir::new(&self.parts.instances_dir, id)
    }

    /// Drops what this host tracked of an instance it no longer holds.
    fn forget(&self, id: InstanceId) {
        self.flavors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.last_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn spawn_timeout(&self) -> Duration {
        Duration::from_secs(self.parts.config.spawn_timeout_secs)
    }

    /// Casts a state change to the conductor; a failed cast waits in the
    /// outbox for the periodic loop to send again.
    async fn report(
        &self,
        ctx: &RequestContext,
        id: InstanceId,
        state: InstanceState,
        task_state: Option<&str>,
        reason: Option<String>,
    ) {
        let update = InstanceUpdate {
            instance_id: id,
            host: Some(self.parts.host.clone()),
            state,
            task_state: task_state.map(str::to_owned),
            reason,
            sequence: next_sequence(),
            attempt: self
                .attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&id)
                .copied()
                .unwrap_or(0),
        };
        {
            let mut last = self
                .last_states
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if matches!(state, InstanceState::Terminated | InstanceState::Error) {
                last.remove(&id);
            } else {
                last.insert(id, state);
            }
        }
        tracing::info!(instance_id = %id, ?state, task_state, "state change");
        match self.parts.conductor.instance_update(ctx, &update).await {
            Ok(()) => self.outbox.reported(id, update.sequence),
            Err(e) => {
                warn!(instance_id = %id, error = %error_chain(&e), "could not report the state change; will send it again");
                self.outbox.report_failed(update);
            }
        }
    }
}
