//! A whole cloud in this process on fake hypervisors: the api service on
//! loopback, the scheduler, a network controller (no host changes) and N
//! compute workers on the fake driver. Over the in-process bus for
//! benchmarks and API tests ([`FakeCloud::start`]), or each service on a
//! transport of its own, as the broker fault tests run it
//! ([`FakeCloud::start_on`]). Nothing here touches the host's network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use stratus_api::config::{ApiConfig, PublicAddressing, Quotas};
use stratus_compute::config::{ComputeConfig, DriverKind};
use stratus_compute::driver::fake::FakeDriver;
use stratus_compute::worker::{Worker, WorkerSetup};
use stratus_host::FakeHost;
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{Handler, RpcClient, ServerHandle, Transport};
use stratus_scheduler::config::SchedulerConfig;
use stratus_scheduler::service::SchedulerService;

use crate::error::Cause;

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
    /// `[api] build_timeout_secs`.
    pub build_timeout_secs: u64,
    /// How long every service's calls wait for a reply.
    pub call_timeout: Duration,
    /// A public range for launches and Elastic IPs, given to the api and
    /// to the network controller alike (whose NAT and interface go to the
    /// recording fake host, never the real one); none: no public addresses.
    pub public: Option<PublicAddressing>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            hosts: 2,
            host_vcpus: 8,
            host_memory_mb: 8192,
            quotas: Quotas::default(),
            database_url: None,
            build_timeout_secs: ApiConfig::default().build_timeout_secs,
            call_timeout: Duration::from_secs(30),
            public: None,
        }
    }
}

/// Gives the service called by its argument (`network`, `scheduler`, `api`
/// or a host name) the transport it is to use.
pub type Connect<'a> =
    &'a (dyn Fn(&str) -> BoxFuture<'static, Result<Arc<dyn Transport>, String>> + Sync);

/// The running cloud; dropping it stops nothing but its scratch folder.
pub struct FakeCloud {
    /// `http://127.0.0.1:<port>/`.
    pub endpoint: String,
    /// The api service.
    pub api: stratus_api::start::Api,
    /// The scheduler.
    pub scheduler: Arc<SchedulerService>,
    /// The network controller.
    pub network: Arc<NetworkManager>,
    /// The folder RegisterImage may take files from.
    pub images: PathBuf,
    /// The compute workers.
    pub workers: Vec<Worker>,
    /// Each worker's host and hypervisor.
    pub fakes: Vec<(HostName, Arc<FakeDriver>)>,
    /// The transports the services were given, in the order they were asked for.
    pub transports: Vec<Arc<dyn Transport>>,
    _servers: Vec<ServerHandle>,
    /// Scratch space (state folders, databases).
    pub dir: tempfile::TempDir,
}

/// Starting the cloud failed.
#[derive(Debug, thiserror::Error)]
#[error("fake cloud: {what}")]
pub struct FakeCloudError {
    /// The step that failed.
    pub what: &'static str,
    /// Why, when another error says so.
    #[source]
    pub source: Option<Cause>,
}

fn fail<E: Into<Cause>>(what: &'static str) -> impl FnOnce(E) -> FakeCloudError {
    move |e| FakeCloudError {
        what,
        source: Some(e.into()),
    }
}

/// What starting the services gathers on the way.
struct Starter<'a> {
    connect: Connect<'a>,
    dir: &'a std::path::Path,
    call: Duration,
    transports: Vec<Arc<dyn Transport>>,
    servers: Vec<ServerHandle>,
}

impl Starter<'_> {
    /// The transport for `name`, kept in the order asked for.
    async fn transport(&mut self, name: &str) -> Result<Arc<dyn Transport>, FakeCloudError> {
        let t = (self.connect)(name).await.map_err(fail("connecting"))?;
        self.transports.push(t.clone());
        Ok(t)
    }

    /// Serves `handler` on `topic` (on `host`'s queue too, when given).
    async fn serve(
        &mut self,
        t: &Arc<dyn Transport>,
        topic: &'static str,
        host: Option<&HostName>,
        handler: Arc<dyn Handler>,
    ) -> Result<(), FakeCloudError> {
        let server = t
            .serve(topic, host, handler)
            .await
            .map_err(fail("serving"))?;
        self.servers.push(server);
        Ok(())
    }

    /// The network controller; its host commands (dnsmasq, the public
    /// NAT and interface) only recorded.
    async fn network(
        &mut self,
        public: Option<&PublicAddressing>,
    ) -> Result<Arc<NetworkManager>, FakeCloudError> {
        let t = self.transport("network").await?;
        let defaults = NetworkConfig::default();
        let config = NetworkConfig {
            dhcp: false,
            fixed_range: "10.0.0.0/8".into(),
            network_size: 65536,
            // The api's view and the controller's must name one range.
            public_range: public.map(|p| p.range.to_string()).unwrap_or_default(),
            public_ip_on_launch: public.is_some_and(|p| p.on_launch),
            public_dns_domain: public
                .map_or(defaults.public_dns_domain.clone(), |p| p.dns_domain.clone()),
            ..defaults
        };
        let network = NetworkManager::start(
            &config,
            &self.dir.join("network"),
            Arc::new(FakeHost::new()),
        )
        .await
        .map_err(fail("network controller"))?;
        let network = Arc::new(network);
        let service = stratus_network::service::NetworkService::new(network.clone());
        self.serve(&t, "network", None, Arc::new(service)).await?;
        let reconciler = stratus_network::reconcile::Reconciler::new(
            network.clone(),
            stratus_rpc::clients::ConductorClient::new(RpcClient::new(t.clone(), self.call)),
        );
        // Its first pass may come before the api serves: it keeps the
        // addresses it could not ask about.
        tokio::spawn(reconciler.run(Duration::from_secs(config.reconcile_interval_secs)));
        Ok(network)
    }

    async fn scheduler(&mut self) -> Result<Arc<SchedulerService>, FakeCloudError> {
        let t = self.transport("scheduler").await?;
        let scheduler = Arc::new(SchedulerService::new(
            &SchedulerConfig::default(),
            RpcClient::new(t.clone(), self.call),
        ));
        self.serve(&t, "scheduler", None, scheduler.clone()).await?;
        Ok(scheduler)
    }

    /// The api service, taking images from `images`.
    async fn api(
        &mut self,
        options: &Options,
        images: &std::path::Path,
    ) -> Result<stratus_api::start::Api, FakeCloudError> {
        let config = ApiConfig {
            listen: "127.0.0.1:0".into(),
            metadata_listen: "127.0.0.1:0".into(),
            quotas: options.quotas.clone(),
            image_roots: vec![images.to_path_buf()],
            database_url: options.database_url.clone(),
            build_timeout_secs: options.build_timeout_secs,
            public: options.public.clone(),
            ..ApiConfig::default()
        };
        let t = self.transport("api").await?;
        let api = stratus_api::start::start(
            &config,
            &self.dir.join("api"),
            RpcClient::new(t.clone(), self.call),
        )
        .await
        .map_err(fail("api"))?;
        self.serve(&t, "conductor", None, api.conductor.clone())
            .await?;
        tokio::spawn(api.recovery.clone().run());
        Ok(api)
    }

    /// Compute worker `n` on a fake hypervisor of its own.
    async fn worker(
        &mut self,
        n: usize,
        options: &Options,
    ) -> Result<(Worker, HostName, Arc<FakeDriver>), FakeCloudError> {
        let host: HostName = format!("node-{n:03}").parse().map_err(fail("host name"))?;
        let t = self.transport(host.as_str()).await?;
        let fake = Arc::new(FakeDriver::new());
        let worker = stratus_compute::worker::start(WorkerSetup {
            host: host.clone(),
            state_dir: &self.dir.join(host.as_str()),
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
            transport: t.clone(),
            call_timeout: self.call,
            host_commands: Some(Arc::new(FakeHost::new())),
            driver: Some(fake.clone()),
            metadata: None,
        })
        .await
        .map_err(fail("compute worker"))?;
        self.serve(&t, "compute", Some(&host), worker.service.clone())
            .await?;
        Ok((worker, host, fake))
    }
}

impl FakeCloud {
    /// Starts every service on one in-process bus and waits until the
    /// scheduler has heard from every host.
    pub async fn start(options: Options) -> Result<Self, FakeCloudError> {
        let bus = MemoryTransport::new(64, Duration::from_millis(100));
        let connect = move |_: &str| -> BoxFuture<'static, Result<Arc<dyn Transport>, String>> {
            let transport: Arc<dyn Transport> = Arc::new(bus.clone());
            Box::pin(async move { Ok(transport) })
        };
        Self::start_on(options, &connect).await
    }

    /// Starts every service on the transport `connect` gives it and waits
    /// until the scheduler has heard from every host.
    pub async fn start_on(options: Options, connect: Connect<'_>) -> Result<Self, FakeCloudError> {
        let dir = tempfile::tempdir().map_err(fail("scratch folder"))?;
        let mut starter = Starter {
            connect,
            dir: dir.path(),
            call: options.call_timeout,
            transports: Vec::new(),
            servers: Vec::new(),
        };
        let network = starter.network(options.public.as_ref()).await?;
        let scheduler = starter.scheduler().await?;
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).map_err(fail("image folder"))?;
        let api = starter.api(&options, &images).await?;
        let mut workers = Vec::new();
        let mut fakes = Vec::new();
        for n in 0..options.hosts {
            let (worker, host, fake) = starter.worker(n, &options).await?;
            workers.push(worker);
            fakes.push((host, fake));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while scheduler.placer().hosts(Instant::now()).len() < options.hosts {
            if Instant::now() > deadline {
                return Err(FakeCloudError {
                    what: "compute hosts never reported",
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Starter {
            transports,
            servers,
            ..
        } = starter;
        Ok(Self {
            endpoint: format!("http://{}/", api.ec2_address),
            api,
            scheduler,
            network,
            images,
            workers,
            fakes,
            transports,
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
            .map_err(fail("credentials"))?;
        Ok((c.access_key, c.secret_key))
    }
}
