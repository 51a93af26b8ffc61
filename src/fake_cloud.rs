//! A whole cloud in this process on fake hypervisors: the api service on
//! loopback, the scheduler, a network controller (no host changes) and N
//! compute workers on the fake driver, over the in-process bus. Benchmarks
//! and API tests use it; nothing here touches the host's network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_api::config::{ApiConfig, Quotas};
use stratus_compute::config::{ComputeConfig, DriverKind};
use stratus_compute::driver::fake::FakeDriver;
use stratus_compute::worker::{Worker, WorkerSetup};
use stratus_network::config::NetworkConfig;
use stratus_network::linux::FakeHost;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{RpcClient, ServerHandle, Transport};
use stratus_scheduler::config::SchedulerConfig;
use stratus_scheduler::service::SchedulerService;

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Compute workers.
    pub hosts: usize,
    /// vCPUs each host offers.
    pub host_vcpus: u32,
    /// Memory each host offers, in MiB.
    pub host_memory_mb: u64,
    /// Per-project limits.
    pub quotas: Quotas,
    /// The api database; a SQLite file in the scratch folder when unset.
    pub database_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            hosts: 2,
            host_vcpus: 8,
            host_memory_mb: 8192,
            quotas: Quotas::default(),
            database_url: None,
        }
    }
}

/// The running cloud; dropping it stops nothing but its scratch folder.
pub struct FakeCloud {
    /// `http://127.0.0.1:<port>/`.
    pub endpoint: String,
    /// The api service.
    pub api: stratus_api::start::Api,
    /// The scheduler.
    pub scheduler: Arc<SchedulerService>,
    /// The folder RegisterImage may take files from.
    pub images: PathBuf,
    /// The compute workers.
    pub workers: Vec<Worker>,
    _servers: Vec<ServerHandle>,
    /// Scratch space (state folders, databases).
    pub dir: tempfile::TempDir,
}

/// Starting the cloud failed.
#[derive(Debug, thiserror::Error)]
#[error("fake cloud: {0}")]
pub struct FakeCloudError(String);

fn fail(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> FakeCloudError {
    move |e| FakeCloudError(format!("{what}: {e}"))
}

impl FakeCloud {
    /// Starts every service and waits until the scheduler has heard from
    /// every host.
    pub async fn start(options: Options) -> Result<Self, FakeCloudError> {
        let dir = tempfile::tempdir().map_err(|e| fail("scratch folder")(&e))?;
        let bus = MemoryTransport::new(64, Duration::from_millis(100));
        let transport: Arc<dyn Transport> = Arc::new(bus.clone());
        let rpc = RpcClient::new(transport.clone(), Duration::from_secs(30));
        let network = stratus_network::NetworkManager::start(
            &NetworkConfig {
                dhcp: false,
                fixed_range: "10.0.0.0/8".into(),
                network_size: 65536,
                ..NetworkConfig::default()
            },
            &dir.path().join("network"),
            Arc::new(FakeHost::new()),
        )
        .await
        .map_err(|e| fail("network controller")(&e))?;
        let scheduler = Arc::new(SchedulerService::new(
            &SchedulerConfig::default(),
            rpc.clone(),
        ));
        let network_service = Arc::new(stratus_network::service::NetworkService::new(Arc::new(
            network,
        )));
        let mut servers = vec![
            bus.serve("network", None, network_service)
                .await
                .map_err(|e| fail("serve network")(&e))?,
            bus.serve("scheduler", None, scheduler.clone())
                .await
                .map_err(|e| fail("serve scheduler")(&e))?,
        ];
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).map_err(|e| fail("image folder")(&e))?;
        let config = ApiConfig {
            listen: "127.0.0.1:0".into(),
            metadata_listen: "127.0.0.1:0".into(),
            quotas: options.quotas.clone(),
            image_roots: vec![images.clone()],
            database_url: options.database_url.clone(),
            ..ApiConfig::default()
        };
        let api = stratus_api::start::start(&config, &dir.path().join("api"), rpc.clone())
            .await
            .map_err(|e| fail("api")(&e))?;
        servers.push(
            bus.serve("conductor", None, api.conductor.clone())
                .await
                .map_err(|e| fail("serve conductor")(&e))?,
        );
        let mut workers = Vec::new();
        for n in 0..options.hosts {
            let host: HostName = format!("node-{n:03}")
                .parse()
                .map_err(|e| fail("host name")(&e))?;
            let worker = stratus_compute::worker::start(WorkerSetup {
                host: host.clone(),
                state_dir: &dir.path().join(host.as_str()),
                config: &ComputeConfig {
                    driver: DriverKind::Fake,
                    report_interval_secs: 1,
                    vcpus: Some(options.host_vcpus),
                    memory_mb: Some(options.host_memory_mb),
                    disk_gb: Some(10_000),
                    config_drive: false,
                    ..ComputeConfig::default()
                },
                vlan_interface: "eth0".into(),
                transport: transport.clone(),
                call_timeout: Duration::from_secs(30),
                host_commands: Some(Arc::new(FakeHost::new())),
                driver: Some(Arc::new(FakeDriver::new())),
                metadata: None,
            })
            .await
            .map_err(|e| fail("compute worker")(&e))?;
            servers.push(
                bus.serve("compute", Some(&host), worker.service.clone())
                    .await
                    .map_err(|e| fail("serve compute")(&e))?,
            );
            workers.push(worker);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while scheduler.placer().hosts(Instant::now()).len() < options.hosts {
            if Instant::now() > deadline {
                return Err(FakeCloudError("compute hosts never reported".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            endpoint: format!("http://{}/", api.ec2_address),
            api,
            scheduler,
            images,
            workers,
            _servers: servers,
            dir,
        })
    }

    /// A new access key for `user` in `project`: (key, secret).
    pub async fn credentials(
        &self,
        project: &str,
        user: &str,
    ) -> Result<(String, String), FakeCloudError> {
        let c = stratus_api::admin::create_credentials(&self.api.cloud.db, project, user, false)
            .await
            .map_err(|e| fail("credentials")(&e))?;
        Ok((c.access_key, c.secret_key))
    }
}
