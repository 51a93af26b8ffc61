//! The scheduler with four compute workers on the fake driver, each on its
//! own connection to a real RabbitMQ (as separate processes would be), a
//! real network controller and a recording conductor: spreading by the
//! weigher, a silent worker dropped after `service_down_time`, a disabled
//! host passed over (through `stratus service disable`), and a failing
//! build retried on other hosts until `max_attempts`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use stratus_compute::config::{ComputeConfig, DriverKind};
use stratus_compute::driver::VirtDriver;
use stratus_compute::driver::fake::FakeDriver;
use stratus_compute::instance_dir::domain_name;
use stratus_compute::worker::{Worker, WorkerSetup};
use stratus_host::FakeHost;
use stratus_network::config::NetworkConfig;
use stratus_rpc::clients::SchedulerClient;
use stratus_rpc::config::RpcConfig;
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::wire::compute::{ImageRef, RunInstance};
use stratus_rpc::wire::conductor::{
    BuildClaim, ClaimAnswer, InstanceState, InstanceUpdate, KnownInstance,
};
use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::scheduler::ScheduleRunInstances;
use stratus_rpc::{HandlerError, RequestContext, RpcClient, ServerHandle, Transport};
use stratus_scheduler::config::SchedulerConfig;
use stratus_scheduler::service::SchedulerService;
use stratus_test_support::stand_in::{self, StandIn};
use stratus_test_support::{broker, command, fixtures, images};

const DOWN_AFTER_SECS: u64 = 3;

/// Keeps the newest update per instance, and every host that reported it;
/// grants each instance's build to the first host that claims it, as the
/// api does.
#[derive(Default)]
struct Conductor {
    last: Mutex<HashMap<InstanceId, InstanceUpdate>>,
    hosts: Mutex<HashMap<InstanceId, Vec<HostName>>>,
    claimed: Mutex<HashMap<InstanceId, (HostName, u32)>>,
}

impl StandIn for Conductor {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        if method == "claim_build" {
            let claim: BuildClaim = decode_args(method, args)?;
            // Handed back for another host (the report, or a claim for a
            // later placement that outran it): whoever claims next holds it.
            let handed_back = self
                .state(claim.instance_id)
                .is_some_and(|u| u.task_state.as_deref() == Some("scheduling"));
            let mut claimed = self.claimed.lock().expect("lock");
            let holder = claimed
                .entry(claim.instance_id)
                .or_insert_with(|| (claim.host.clone(), claim.attempt));
            if handed_back || claim.attempt > holder.1 {
                *holder = (claim.host.clone(), claim.attempt);
            }
            let answer = if holder.0 == claim.host {
                ClaimAnswer::Granted
            } else {
                ClaimAnswer::Refused {
                    reason: format!("{} holds it", holder.0),
                    release_address: false,
                }
            };
            return encode_result(&answer);
        }
        if method == "instance_states" {
            return encode_result(&Vec::<KnownInstance>::new());
        }
        if method != "instance_update" {
            return Ok(null());
        }
        let update: InstanceUpdate = decode_args(method, args)?;
        if let Some(host) = &update.host {
            let mut hosts = self.hosts.lock().expect("lock");
            let seen = hosts.entry(update.instance_id).or_default();
            if !seen.contains(host) {
                seen.push(host.clone());
            }
        }
        let mut last = self.last.lock().expect("lock");
        let newer = last
            .get(&update.instance_id)
            .is_none_or(|l| l.sequence < update.sequence);
        if newer {
            last.insert(update.instance_id, update);
        }
        Ok(null())
    }
}

impl Conductor {
    fn state(&self, id: InstanceId) -> Option<InstanceUpdate> {
        self.last.lock().expect("lock").get(&id).cloned()
    }

    /// Waits up to 60 s for every instance to end running or in error.
    async fn settle(&self, ids: &[InstanceId]) -> Vec<InstanceUpdate> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done: Vec<InstanceUpdate> = ids
                .iter()
                .filter_map(|id| self.state(*id))
                .filter(|u| matches!(u.state, InstanceState::Running | InstanceState::Error))
                .collect();
            if done.len() == ids.len() || Instant::now() > deadline {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Host {
    name: HostName,
    fake: Arc<FakeDriver>,
    worker: Worker,
    transport: Arc<dyn Transport>,
    _server: ServerHandle,
}

impl Host {
    async fn domains(&self) -> usize {
        self.fake.list().await.expect("list").len()
    }
}

struct Cloud {
    rpc: RpcConfig,
    image: ImageRef,
    hosts: Vec<Host>,
    conductor: Arc<Conductor>,
    scheduler: Arc<SchedulerService>,
    client: SchedulerClient,
    control: Arc<dyn Transport>,
    _servers: Vec<ServerHandle>,
    _dir: tempfile::TempDir,
}

fn base_image(dir: &Path) -> ImageRef {
    let disk = dir.join("base.qcow2");
    images::qcow2(&disk, "64M");
    fixtures::image("ami-00000000000000a1", disk)
}

impl Cloud {
    async fn start(hosts: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rpc = broker::rpc_config(
            format!("stratus-sched-{}", uuid::Uuid::new_v4().simple()),
            Duration::from_secs(60),
        );
        let control = stratus_rpc::transport::connect(&rpc, "test-control")
            .await
            .expect("RabbitMQ on 127.0.0.1 (deploy/dev-setup starts it)");
        let call = Duration::from_secs(10);

        let network = stratus_network::NetworkManager::start(
            &NetworkConfig {
                dhcp: false,
                ..NetworkConfig::default()
            },
            &dir.path().join("network"),
            Arc::new(FakeHost::new()),
        )
        .await
        .expect("network");
        let conductor = Arc::new(Conductor::default());
        let scheduler = Arc::new(SchedulerService::new(
            &SchedulerConfig {
                service_down_time_secs: DOWN_AFTER_SECS,
                ..SchedulerConfig::default()
            },
            RpcClient::new(control.clone(), call),
        ));
        let mut servers = vec![
            control
                .serve(
                    "network",
                    None,
                    Arc::new(stratus_network::service::NetworkService::new(Arc::new(
                        network,
                    ))),
                )
                .await
                .expect("serve network"),
            control
                .serve("conductor", None, stand_in::handler(&conductor))
                .await
                .expect("serve conductor"),
            control
                .serve("scheduler", None, scheduler.clone())
                .await
                .expect("serve scheduler"),
        ];
        let mut started = Vec::new();
        for i in 0..hosts {
            let name: HostName = format!("host-{}", (b'a' + i as u8) as char)
                .parse()
                .expect("host");
            let transport = stratus_rpc::transport::connect(&rpc, name.as_str())
                .await
                .expect("connect");
            let fake = Arc::new(FakeDriver::new());
            let state = dir.path().join(name.as_str());
            let config = ComputeConfig {
                driver: DriverKind::Fake,
                report_interval_secs: 1,
                vcpus: Some(16),
                memory_mb: Some(16384),
                disk_gb: Some(200),
                config_drive: false,
                ..ComputeConfig::default()
            };
            let worker = stratus_compute::worker::start(WorkerSetup {
                host: name.clone(),
                state_dir: &state,
                config: &config,
                vlan_interface: "eth0".into(),
                transport: transport.clone(),
                call_timeout: call,
                host_commands: Some(Arc::new(FakeHost::new())),
                driver: Some(fake.clone()),
                metadata: None,
            })
            .await
            .expect("worker");
            let server = transport
                .serve("compute", Some(&name), worker.service.clone())
                .await
                .expect("serve compute");
            started.push(Host {
                name,
                fake,
                worker,
                transport,
                _server: server,
            });
        }
        servers.shrink_to_fit();
        let cloud = Self {
            image: base_image(dir.path()),
            client: SchedulerClient::new(RpcClient::new(control.clone(), call)),
            rpc,
            hosts: started,
            conductor,
            scheduler,
            control,
            _servers: servers,
            _dir: dir,
        };
        cloud.wait_for_hosts_up(hosts).await;
        cloud
    }

    fn up(&self) -> Vec<String> {
        let mut up: Vec<String> = self
            .scheduler
            .placer()
            .hosts(Instant::now())
            .into_iter()
            .filter(|(_, up)| *up)
            .map(|(r, _)| r.host.to_string())
            .collect();
        up.sort();
        up
    }

    async fn wait_for_hosts_up(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.up().len() != n {
            assert!(Instant::now() < deadline, "hosts up: {:?}", self.up());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn instance(&self) -> RunInstance {
        RunInstance {
            reservation_id: Some("r-0000000000000001".into()),
            ..fixtures::run_instance(self.image.clone(), fixtures::tiny(512))
        }
    }

    /// Sends one request of `n` instances and waits for each to settle.
    async fn run(&self, instances: Vec<RunInstance>) -> Vec<InstanceUpdate> {
        let ids: Vec<InstanceId> = instances.iter().map(|i| i.instance_id).collect();
        self.client
            .run_instance(
                &RequestContext::system(),
                &ScheduleRunInstances { instances },
            )
            .await
            .expect("cast");
        let settled = self.conductor.settle(&ids).await;
        assert_eq!(settled.len(), ids.len(), "instances still pending");
        settled
    }

    async fn counts(&self) -> Vec<usize> {
        let mut counts = Vec::new();
        for host in &self.hosts {
            counts.push(host.domains().await);
        }
        counts
    }

    async fn stop(self) {
        for host in self.hosts {
            host.worker.periodic.cancel();
            host.transport.close().await;
        }
        self.control.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_spreads_retries_and_drops_silent_hosts_over_rabbitmq() {
    let cloud = Cloud::start(4).await;

    // 100 instances in one request: the spread weigher, consuming as it
    // places, gives each of four equal hosts a quarter.
    let instances: Vec<RunInstance> = (0..100).map(|_| cloud.instance()).collect();
    let settled = cloud.run(instances).await;
    let errors: Vec<_> = settled
        .iter()
        .filter(|u| u.state != InstanceState::Running)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(cloud.counts().await, [25, 25, 25, 25]);
    let report = cloud.hosts[0].worker.manager.host_report().await;
    assert_eq!(
        (report.running_instances, report.memory_mb_used),
        (25, 25 * 512)
    );

    // A build that fails on two hosts is retried until a third builds it.
    let retried = cloud.instance();
    for host in &cloud.hosts[..2] {
        host.fake.fail_spawn(&domain_name(&retried.instance_id));
    }
    let id = retried.instance_id;
    let settled = cloud.run(vec![retried]).await;
    assert_eq!(settled[0].state, InstanceState::Running, "{:?}", settled[0]);
    // fail_spawn is one-shot: a retry on host-a or host-b would succeed
    // there, so landing elsewhere shows failed hosts are excluded.
    let ran_on = settled[0].host.clone().expect("host").to_string();
    assert!(
        ["host-c", "host-d"].contains(&ran_on.as_str()),
        "ran on {ran_on}"
    );
    let tried = cloud.conductor.hosts.lock().expect("lock")[&id].clone();
    assert_eq!(tried.last().map(ToString::to_string), Some(ran_on));

    // A build that fails everywhere ends in error after max_attempts (3)
    // distinct hosts, with the scheduler's reason.
    let doomed = cloud.instance();
    for host in &cloud.hosts {
        host.fake.fail_spawn(&domain_name(&doomed.instance_id));
    }
    let id = doomed.instance_id;
    let settled = cloud.run(vec![doomed]).await;
    assert_eq!(settled[0].state, InstanceState::Error);
    let reason = settled[0].reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("No valid host was found. Exceeded max scheduling attempts 3"),
        "{reason}"
    );
    assert!(reason.contains("injected failure"), "{reason}");
    assert_eq!(cloud.conductor.hosts.lock().expect("lock")[&id].len(), 3);

    // An operator disables host-b through the CLI: it gets nothing more.
    let stdout = command::stdout_of(
        std::process::Command::new(stratus_test_support::workspace::stratus_bin())
            .args(["service", "disable", "host-b", "--reason", "disk swap"])
            .env("STRATUS_RPC__EXCHANGE", &cloud.rpc.exchange)
            .env("STRATUS_RPC__URL", &cloud.rpc.url)
            .env("STRATUS_RPC__QUEUE_EXPIRY_MS", "60000")
            .env("STRATUS_LOG__FILTER", "warn"),
        "stratus",
    );
    assert!(stdout.contains("host-b: disabled (disk swap)"), "{stdout}");
    // The switch reaches the scheduler on its fanout queue, which it reads
    // apart from its work queue: wait until it knows, as an operator would.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cloud
        .scheduler
        .placer()
        .hosts(Instant::now())
        .iter()
        .any(|(r, _)| r.host.as_str() == "host-b" && r.enabled)
    {
        assert!(
            Instant::now() < deadline,
            "the scheduler never heard host-b is disabled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = cloud.counts().await;
    let instances: Vec<RunInstance> = (0..12).map(|_| cloud.instance()).collect();
    cloud.run(instances).await;
    let after = cloud.counts().await;
    assert_eq!(
        after[1], before[1],
        "the disabled host got work: {before:?} → {after:?}"
    );
    assert_eq!(
        after.iter().sum::<usize>(),
        before.iter().sum::<usize>() + 12
    );

    // host-d stops reporting (its worker hangs, say): after
    // service_down_time it is down and gets nothing, though it still serves.
    cloud.hosts[3].worker.periodic.cancel();
    let deadline = Instant::now() + Duration::from_secs(DOWN_AFTER_SECS + 5);
    while cloud.up().contains(&"host-d".to_owned()) {
        assert!(Instant::now() < deadline, "host-d still up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cloud.up(), ["host-a", "host-b", "host-c"]);
    let before = cloud.counts().await;
    let instances: Vec<RunInstance> = (0..12).map(|_| cloud.instance()).collect();
    let settled = cloud.run(instances).await;
    assert!(settled.iter().all(|u| u.state == InstanceState::Running));
    let after = cloud.counts().await;
    assert_eq!(
        after[3], before[3],
        "the silent host got work: {before:?} → {after:?}"
    );
    assert_eq!(
        after[1], before[1],
        "the disabled host got work: {before:?} → {after:?}"
    );
    assert_eq!(after[0] + after[2], before[0] + before[2] + 12);

    // The CLI's errors are clear: an unknown host times out with its name.
    let out = std::process::Command::new(stratus_test_support::workspace::stratus_bin())
        .args(["service", "enable", "bad host"])
        .env("STRATUS_RPC__EXCHANGE", &cloud.rpc.exchange)
        .output()
        .expect("stratus runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"bad host\" is not a host name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = cloud.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["host-a", "host-b", "host-c", "host-d"]);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_delivered_twice_runs_once_on_the_host_chosen_first() {
    let cloud = Cloud::start(4).await;
    let instances: Vec<RunInstance> = (0..8).map(|_| cloud.instance()).collect();
    let ids: Vec<InstanceId> = instances.iter().map(|i| i.instance_id).collect();
    let request = ScheduleRunInstances { instances };
    // The broker redelivers what it never saw acked: the same request again.
    for _ in 0..2 {
        cloud
            .client
            .run_instance(&RequestContext::system(), &request)
            .await
            .expect("cast");
    }
    let settled = cloud.conductor.settle(&ids).await;
    assert_eq!(settled.len(), ids.len(), "instances still pending");
    assert!(settled.iter().all(|u| u.state == InstanceState::Running));
    // Wait out the second delivery's builds, then count copies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cloud.counts().await.iter().sum::<usize>(), ids.len());
    let hosts = cloud.conductor.hosts.lock().expect("lock").clone();
    for id in &ids {
        assert_eq!(hosts[id].len(), 1, "{id} was built on {:?}", hosts[id]);
    }
    cloud.stop().await;
}
