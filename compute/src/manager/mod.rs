//! The compute manager: what a worker does to the instances of its host.
//! `build.rs` runs `run_instance`; `lifecycle.rs` the rest of an instance's
//! life; `periodic.rs` power sync and capacity reports; `recovery.rs` what
//! a restart finds (every interrupted build resumed, adopted or cleaned up
//! at once); `journal.rs` the build's steps on disk and its claim;
//! `reconcile.rs` what this host holds against what the conductor says;
//! `resize.rs` and `user_data.rs` a stopped instance given its new type and
//! user data before it starts.

mod build;
mod build_steps;
mod claims;
mod clean_up;
mod enabled;
mod journal;
mod lifecycle;
mod outbox;
mod periodic;
mod reconcile;
mod recovery;
mod resize;
mod user_data;

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
pub use resize::StartError;

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

    /// Builds the config drive of the instance in `dir` again from
    /// `request` (its user data changed while it was stopped), in place of
    /// the one it has.
    async fn refresh_config_drive(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
        fixed: &FixedIp,
    ) -> Result<(), PrepareError>;

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
    /// Where reports and releases not yet sent are kept across restarts.
    pub outbox_file: PathBuf,
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
    /// Journaled builds whose claim could not be asked (the conductor was
    /// away): the periodic reconcile resumes them.
    awaiting_claim: Mutex<std::collections::HashSet<InstanceId>>,
}

impl ComputeManager {
    /// A manager over `parts`.
    pub fn new(parts: Parts) -> Arc<Self> {
        let outbox = outbox::Outbox::load(parts.outbox_file.clone());
        Arc::new(Self {
            parts,
            locks: KeyedLocks::new(),
            flavors: Mutex::new(HashMap::new()),
            last_states: Mutex::new(HashMap::new()),
            enabled: Mutex::new(enabled::HostEnabled::default()),
            attempts: Mutex::new(HashMap::new()),
            outbox,
            awaiting_claim: Mutex::new(std::collections::HashSet::new()),
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

    /// The instance's lock if nothing holds it now.
    async fn try_lock(&self, id: InstanceId) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        tokio::time::timeout(Duration::ZERO, self.locks.lock(id))
            .await
            .ok()
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
        let update = self.update(id, state, task_state, reason);
        self.send(ctx, update).await;
    }

    /// Like [`Self::report`], but the report is in the outbox file before
    /// it is sent, and stays there until the reconcile sees the conductor
    /// know it, so a crash before or just after the cast cannot lose it
    /// (failures).
    async fn report_durably(
        &self,
        ctx: &RequestContext,
        id: InstanceId,
        state: InstanceState,
        reason: String,
    ) {
        let update = self.update(id, state, None, Some(reason));
        self.outbox.until_confirmed(update.clone());
        self.send(ctx, update).await;
    }

    /// A report of `state`, stamped with this host's next sequence.
    fn update(
        &self,
        id: InstanceId,
        state: InstanceState,
        task_state: Option<&str>,
        reason: Option<String>,
    ) -> InstanceUpdate {
        InstanceUpdate {
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
        }
    }

    /// Sends `update`; kept in the outbox when it cannot go.
    async fn send(&self, ctx: &RequestContext, update: InstanceUpdate) {
        let (id, state) = (update.instance_id, update.state);
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
        let task_state = update.task_state.as_deref();
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
