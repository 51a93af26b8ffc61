//! A compute worker on the fake driver, with an in-memory network
//! controller and a recording conductor, all on one in-process bus.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use stratus_compute::config::ComputeConfig;
use stratus_compute::driver::VirtDriver;
use stratus_compute::driver::fake::FakeDriver;
use stratus_compute::instance_dir::domain_name;
use stratus_compute::manager::BuildTimings;
use stratus_compute::state::PowerState;
use stratus_compute::worker::{Worker, WorkerSetup, start};
use stratus_host::FakeHost;
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::compute::{ImageRef, RunInstance};
use stratus_rpc::wire::conductor::{
    BuildClaim, ClaimAnswer, InstanceState, InstanceStatesQuery, InstanceUpdate, KnownInstance,
};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{HandlerError, RequestContext, ServerHandle, Transport};
use stratus_test_support::stand_in::{self, StandIn};
use stratus_test_support::{fixtures, images};

use crate::fake_network::FakeNetwork;

/// Records every instance update; answers claims (granted unless a test
/// says otherwise) and instance states (from what it heard, as the api
/// would, unless a test sets them).
#[derive(Default)]
pub struct Conductor {
    pub updates: Mutex<Vec<InstanceUpdate>>,
    pub metadata: Mutex<Vec<stratus_rpc::wire::conductor::GuestMetadata>>,
    /// Every claim asked.
    pub claims: Mutex<Vec<BuildClaim>>,
    /// Answers to claims for particular instances (granted otherwise).
    pub claim_answers: Mutex<HashMap<InstanceId, ClaimAnswer>>,
    /// How many claims to fail (as with the conductor away) before answering.
    pub failing_claims: Mutex<u32>,
    /// What `instance_states` says of particular instances.
    pub known: Mutex<HashMap<InstanceId, KnownInstance>>,
    /// Casts are dropped unheard while set, as a crash loses them.
    pub deaf: std::sync::atomic::AtomicBool,
}

impl StandIn for Conductor {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        match method {
            "claim_build" => {
                let claim: BuildClaim = decode_args(method, args)?;
                {
                    let mut failing = self.failing_claims.lock().expect("lock");
                    if *failing > 0 {
                        *failing -= 1;
                        return Err(HandlerError::permanent(
                            "Unavailable",
                            "the conductor is away",
                        ));
                    }
                }
                let answer = self
                    .claim_answers
                    .lock()
                    .expect("lock")
                    .get(&claim.instance_id)
                    .cloned()
                    .unwrap_or(ClaimAnswer::Granted);
                self.claims.lock().expect("lock").push(claim);
                encode_result(&answer)
            }
            "instance_states" => {
                let query: InstanceStatesQuery = decode_args(method, args)?;
                let known: Vec<KnownInstance> = query
                    .ids
                    .iter()
                    .filter_map(|id| self.known_of(*id))
                    .collect();
                encode_result(&known)
            }
            "instance_metadata" => {
                self.metadata
                    .lock()
                    .expect("lock")
                    .push(decode_args(method, args)?);
                Ok(null())
            }
            _ => {
                let update: InstanceUpdate = decode_args(method, args)?;
                if !self.deaf.load(std::sync::atomic::Ordering::SeqCst) {
                    self.updates.lock().expect("lock").push(update);
                }
                Ok(null())
            }
        }
    }
}

impl Conductor {
    /// Refuses claims of `id`.
    pub fn refuse(&self, id: InstanceId, release_address: bool) {
        self.claim_answers.lock().expect("lock").insert(
            id,
            ClaimAnswer::Refused {
                reason: "refused by the test".into(),
                release_address,
            },
        );
    }

    /// Makes `instance_states` say `state` of `id`, held by `host` at `attempt`.
    pub fn set_known(&self, id: InstanceId, state: InstanceState, host: &str, attempt: u32) {
        self.known.lock().expect("lock").insert(
            id,
            KnownInstance {
                instance_id: id,
                state: Some(state),
                host: Some(host.parse().expect("host")),
                attempt,
            },
        );
    }

    /// The claims asked for `id`.
    pub fn claims_of(&self, id: InstanceId) -> usize {
        self.claims
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.instance_id == id)
            .count()
    }

    /// What the stand-in knows of `id`: set by the test, or the last state
    /// heard (pending once claimed), as the api keeps it.
    fn known_of(&self, id: InstanceId) -> Option<KnownInstance> {
        if let Some(set) = self.known.lock().expect("lock").get(&id) {
            return Some(set.clone());
        }
        let claim = self
            .claims
            .lock()
            .expect("lock")
            .iter()
            .rfind(|c| c.instance_id == id)
            .cloned();
        let last = self.last(id);
        let state = match (&last, &claim) {
            (Some(update), _) => update.state,
            (None, Some(_)) => InstanceState::Pending,
            (None, None) => return None,
        };
        Some(KnownInstance {
            instance_id: id,
            state: Some(state),
            host: claim
                .as_ref()
                .map(|c| c.host.clone())
                .or_else(|| last.as_ref().and_then(|u| u.host.clone())),
            attempt: claim.map_or(0, |c| c.attempt),
        })
    }
}

impl Conductor {
    /// The states reported for one instance, in the order they were sent.
    pub fn states(&self, id: InstanceId) -> Vec<(InstanceState, Option<String>)> {
        let mut updates: Vec<InstanceUpdate> = self
            .updates
            .lock()
            .expect("lock")
            .iter()
            .filter(|u| u.instance_id == id)
            .cloned()
            .collect();
        updates.sort_by_key(|u| u.sequence);
        updates
            .into_iter()
            .map(|u| (u.state, u.task_state))
            .collect()
    }

    /// Waits (up to 5 s) until the last update for the instance has `state`;
    /// casts arrive after the call that made them returns.
    pub async fn wait_for(&self, id: InstanceId, state: InstanceState) -> Option<InstanceUpdate> {
        for _ in 0..250 {
            if let Some(last) = self.last(id).filter(|u| u.state == state) {
                return Some(last);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Waits up to `limit` until the last update for the instance has `state`.
    pub async fn wait_for_within(
        &self,
        id: InstanceId,
        state: InstanceState,
        limit: Duration,
    ) -> Option<InstanceUpdate> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(last) = self.last(id).filter(|u| u.state == state) {
                return Some(last);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The newest update for one instance (by sequence, as the conductor keeps it).
    pub fn last(&self, id: InstanceId) -> Option<InstanceUpdate> {
        self.updates
            .lock()
            .expect("lock")
            .iter()
            .filter(|u| u.instance_id == id)
            .max_by_key(|u| u.sequence)
            .cloned()
    }
}

/// Records capacity reports fanned out to the schedulers, and instances
/// handed back for another host.
#[derive(Default)]
pub struct Scheduler {
    pub reports: Mutex<Vec<stratus_rpc::wire::scheduler::HostReport>>,
    pub handed_back: Mutex<Vec<RunInstance>>,
}

impl StandIn for Scheduler {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        match method {
            "update_host" => self
                .reports
                .lock()
                .expect("lock")
                .push(decode_args(method, args)?),
            "run_instance" => {
                let request: stratus_rpc::wire::scheduler::ScheduleRunInstances =
                    decode_args(method, args)?;
                self.handed_back
                    .lock()
                    .expect("lock")
                    .extend(request.instances);
            }
            other => return Err(HandlerError::UnknownMethod(other.to_owned())),
        }
        Ok(null())
    }
}

pub struct Harness {
    pub scheduler: Arc<Scheduler>,
    pub state: tempfile::TempDir,
    pub images: tempfile::TempDir,
    pub bus: MemoryTransport,
    pub worker: Worker,
    /// The fake driver, when the worker runs on it.
    pub fake_driver: Option<Arc<FakeDriver>>,
    pub host_commands: Arc<FakeHost>,
    pub conductor: Arc<Conductor>,
    pub network: Arc<FakeNetwork>,
    _serving: Vec<ServerHandle>,
}

/// A 64 MiB qcow2 base image, with a kernel and ramdisk beside it.
pub fn image(dir: &std::path::Path) -> ImageRef {
    let disk = dir.join("base.qcow2");
    images::qcow2(&disk, "64M");
    std::fs::write(dir.join("vmlinuz"), b"not really a kernel").expect("kernel");
    std::fs::write(dir.join("initrd"), b"not really an initrd").expect("ramdisk");
    ImageRef {
        kernel: Some(dir.join("vmlinuz")),
        ramdisk: Some(dir.join("initrd")),
        ..fixtures::image("ami-0000000000000001", disk)
    }
}

/// A new instance of `image` in project `p1`, flavor m1.tiny with 256 MiB.
pub fn request(image: &ImageRef) -> RunInstance {
    fixtures::run_instance(image.clone(), fixtures::tiny(256))
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_in(
            tempfile::tempdir().expect("tempdir"),
            Arc::new(FakeDriver::new()),
        )
        .await
    }

    /// A worker over an existing state folder and fake driver (restart tests).
    pub async fn start_in(state: tempfile::TempDir, fake: Arc<FakeDriver>) -> Self {
        let conductor = Arc::new(Conductor::default());
        Self::start_in_with(state, fake, conductor).await
    }

    async fn start_in_with(
        state: tempfile::TempDir,
        fake: Arc<FakeDriver>,
        conductor: Arc<Conductor>,
    ) -> Self {
        let mut h =
            Self::start_inner(state, fake.clone(), Arc::new(FakeHost::new()), conductor).await;
        h.fake_driver = Some(fake);
        h
    }

    /// The worker restarted over the same state folder and fake driver, as
    /// after a crash; the conductor (the api) outlives it, and hears again.
    pub async fn restart(self) -> Self {
        let Harness {
            state,
            images,
            fake_driver,
            conductor,
            ..
        } = self;
        conductor
            .deaf
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let fake = fake_driver.expect("a fake driver to restart over");
        let mut h = Self::start_in_with(state, fake, conductor).await;
        // Images outlive the worker: resumed builds fetch them again.
        h.images = images;
        h
    }

    /// The fake driver (panics when the worker runs on a real one).
    pub fn fake(&self) -> &FakeDriver {
        self.fake_driver
            .as_deref()
            .expect("this harness runs the fake driver")
    }

    /// A worker on any driver; host commands through `commands` when it
    /// names a network namespace, else through a recording fake.
    pub async fn start_with(
        state: tempfile::TempDir,
        driver: Arc<dyn VirtDriver>,
        commands: Arc<dyn stratus_host::HostCommands>,
    ) -> Self {
        Self::start_inner(state, driver, commands, Arc::new(Conductor::default())).await
    }

    async fn start_inner(
        state: tempfile::TempDir,
        driver: Arc<dyn VirtDriver>,
        commands: Arc<dyn stratus_host::HostCommands>,
        conductor: Arc<Conductor>,
    ) -> Self {
        let images = tempfile::tempdir().expect("tempdir");
        let bus = MemoryTransport::new(16, Duration::from_millis(50));
        let transport: Arc<dyn Transport> = Arc::new(bus.clone());
        let network = Arc::new(FakeNetwork::at(state.path().join("network.json")));
        let scheduler = Arc::new(Scheduler::default());
        let mut serving = Vec::new();
        serving.push(
            bus.serve("network", None, network.clone())
                .await
                .expect("serve"),
        );
        serving.push(
            bus.serve("scheduler", None, stand_in::handler(&scheduler))
                .await
                .expect("serve"),
        );
        serving.push(
            bus.serve("conductor", None, stand_in::handler(&conductor))
                .await
                .expect("serve"),
        );
        let host_commands = Arc::new(FakeHost::new());
        let host_for_worker: Arc<dyn stratus_host::HostCommands> = if commands.netns().is_some() {
            commands
        } else {
            host_commands.clone()
        };
        let config = ComputeConfig {
            virt_type: stratus_compute::config::VirtType::Qemu,
            spawn_timeout_secs: 30,
            console_max_bytes: 1024,
            vcpus: Some(4),
            memory_mb: Some(4096),
            disk_gb: Some(40),
            // Tests reconcile when they mean to (and once at start).
            reconcile_interval_secs: 3600,
            ..ComputeConfig::default()
        };
        let worker = start(WorkerSetup {
            host: "node1".parse().expect("host"),
            state_dir: state.path(),
            config: &config,
            vlan_interface: "eth0".into(),
            transport,
            call_timeout: Duration::from_secs(5),
            host_commands: Some(host_for_worker),
            driver: Some(driver),
            metadata: None,
        })
        .await
        .expect("worker");
        serving.push(
            bus.serve(
                "compute",
                Some(&"node1".parse().expect("host")),
                worker.service.clone(),
            )
            .await
            .expect("serve"),
        );
        Self {
            scheduler,
            state,
            images,
            bus,
            worker,
            fake_driver: None,
            host_commands,
            conductor,
            network,
            _serving: serving,
        }
    }

    /// Runs `request` on the worker's manager, as the system.
    pub async fn run(&self, request: &RunInstance) -> Option<BuildTimings> {
        self.worker
            .manager
            .run_instance(&RequestContext::system(), request)
            .await
    }

    /// Runs `request`, which must build (`why` says why it should), and
    /// waits until the conductor hears it running.
    pub async fn run_until_running(&self, request: &RunInstance, why: &str) {
        self.run(request).await.expect(why);
        self.conductor
            .wait_for(request.instance_id, InstanceState::Running)
            .await
            .expect("running");
    }

    /// A new instance of a fresh image, built on the worker (which must succeed).
    pub async fn built(&self) -> RunInstance {
        let request = request(&image(self.images.path()));
        self.run(&request).await.expect("built");
        request
    }

    /// The fake driver's state of instance `id`'s domain.
    pub async fn fake_state(&self, id: InstanceId) -> Option<PowerState> {
        self.fake().state(&domain_name(&id)).await.expect("state")
    }

    /// The worker's host name.
    pub fn host(&self) -> stratus_rpc::wire::ids::HostName {
        "node1".parse().expect("host")
    }

    /// Reconciles with the conductor now, as the periodic loop does.
    pub async fn reconcile(&self) {
        self.worker
            .manager
            .reconcile(&RequestContext::system())
            .await;
    }

    /// Stops serving the network topic (the controller becomes unreachable).
    pub async fn stop_network(&mut self) {
        // The network server is the first one started.
        let network = self._serving.remove(0);
        network.stop().await;
    }

    pub fn instance_dir(&self, id: &InstanceId) -> PathBuf {
        self.worker.manager.dir(id).root().to_owned()
    }

    /// Whether the network controller holds an address for the instance.
    pub async fn has_address(&self, id: &InstanceId) -> bool {
        self.network.has_address(id)
    }
}
