//! A cloud in this test process for the fault tests: the api (SQLite), the
//! scheduler, the network controller and N fake-driver compute workers,
//! each on a RabbitMQ connection of its own, and a signed EC2 client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus::ec2_client::{Client, texts};
use stratus_api::config::{ApiConfig, Quotas};
use stratus_api::db::instances::InstanceRow;
use stratus_compute::config::{ComputeConfig, DriverKind};
use stratus_compute::driver::VirtDriver;
use stratus_compute::driver::fake::FakeDriver;
use stratus_compute::worker::{Worker, WorkerSetup};
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_network::linux::FakeHost;
use stratus_rpc::config::RpcConfig;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{RpcClient, ServerHandle, Transport};
use stratus_scheduler::config::SchedulerConfig;
use stratus_scheduler::service::SchedulerService;

/// The services of a cloud in this process, each on a connection of its
/// own, with `hosts` compute workers on the fake driver.
pub struct Cloud {
    pub api: stratus_api::start::Api,
    pub client: Client,
    pub network: Arc<NetworkManager>,
    pub fakes: Vec<(HostName, Arc<FakeDriver>)>,
    pub workers: Vec<Worker>,
    pub transports: Vec<Arc<dyn Transport>>,
    /// The scheduler.
    pub scheduler: Arc<SchedulerService>,
    /// How its services reach the bus.
    pub rpc: RpcConfig,
    _servers: Vec<ServerHandle>,
    /// Scratch space.
    pub dir: tempfile::TempDir,
}

async fn connect(rpc: &RpcConfig, name: &str) -> Arc<dyn Transport> {
    stratus_rpc::transport::connect(rpc, name)
        .await
        .expect("the test's broker")
}

impl Cloud {
    /// Starts every service over `rpc`; waits until `hosts` workers report.
    pub async fn start(rpc: &RpcConfig, hosts: usize, build_timeout_secs: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let call = Duration::from_millis(rpc.call_timeout_ms);
        let mut transports = Vec::new();
        let mut servers = Vec::new();

        let t = connect(rpc, "network").await;
        let network = Arc::new(
            NetworkManager::start(
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
            .expect("network controller"),
        );
        servers.push(
            t.serve(
                "network",
                None,
                Arc::new(stratus_network::service::NetworkService::new(
                    network.clone(),
                )),
            )
            .await
            .expect("serve network"),
        );
        transports.push(t);

        let t = connect(rpc, "scheduler").await;
        let scheduler = Arc::new(SchedulerService::new(
            &SchedulerConfig::default(),
            RpcClient::new(t.clone(), call),
        ));
        servers.push(
            t.serve("scheduler", None, scheduler.clone())
                .await
                .expect("serve scheduler"),
        );
        transports.push(t);

        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).expect("image folder");
        let t = connect(rpc, "api").await;
        let api = stratus_api::start::start(
            &ApiConfig {
                listen: "127.0.0.1:0".into(),
                metadata_listen: "127.0.0.1:0".into(),
                quotas: Quotas {
                    instances: 1000,
                    vcpus: 1000,
                    memory_mb: 1 << 30,
                    ..Quotas::default()
                },
                image_roots: vec![images.clone()],
                build_timeout_secs,
                ..ApiConfig::default()
            },
            &dir.path().join("api"),
            RpcClient::new(t.clone(), call),
        )
        .await
        .expect("api");
        servers.push(
            t.serve("conductor", None, api.conductor.clone())
                .await
                .expect("serve conductor"),
        );
        transports.push(t);

        let mut fakes = Vec::new();
        let mut workers = Vec::new();
        for n in 0..hosts {
            let host: HostName = format!("node-{n}").parse().expect("host name");
            let t = connect(rpc, host.as_str()).await;
            let fake = Arc::new(FakeDriver::new());
            let worker = stratus_compute::worker::start(WorkerSetup {
                host: host.clone(),
                state_dir: &dir.path().join(host.as_str()),
                config: &ComputeConfig {
                    driver: DriverKind::Fake,
                    report_interval_secs: 1,
                    vcpus: Some(64),
                    memory_mb: Some(64 * 1024),
                    disk_gb: Some(1000),
                    config_drive: false,
                    ..ComputeConfig::default()
                },
                vlan_interface: "eth0".into(),
                transport: t.clone(),
                call_timeout: call,
                host_commands: Some(Arc::new(FakeHost::new())),
                driver: Some(fake.clone()),
                metadata: None,
            })
            .await
            .expect("compute worker");
            servers.push(
                t.serve("compute", Some(&host), worker.service.clone())
                    .await
                    .expect("serve compute"),
            );
            transports.push(t);
            fakes.push((host, fake));
            workers.push(worker);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while scheduler.placer().hosts(Instant::now()).len() < hosts {
            assert!(Instant::now() < deadline, "compute hosts never reported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let credentials =
            stratus_api::admin::create_credentials(&api.cloud.db, "acme", "ann", false)
                .await
                .expect("credentials");
        let disk = images.join("disk.qcow2");
        stratus_tests::qcow2(&disk, "64M");
        let client = Client::new(
            &format!("http://{}/", api.ec2_address),
            &api.cloud.config.region,
            &credentials.access_key,
            &credentials.secret_key,
        );
        Self {
            scheduler,
            rpc: rpc.clone(),
            api,
            client,
            network,
            fakes,
            workers,
            transports,
            _servers: servers,
            dir,
        }
        .with_image(&disk)
        .await
    }

    async fn with_image(self, disk: &std::path::Path) -> Self {
        stratus_api::admin::import_image(&self.api.cloud.db, "tiny", disk, None, None)
            .await
            .expect("import image");
        self
    }

    /// RunInstances of one m1.tiny of `image`, with `extra` parameters.
    pub async fn run_one(
        &self,
        image: &str,
        extra: &[(&str, &str)],
    ) -> Result<String, stratus::ec2_client::Ec2ClientError> {
        run_one(&self.client, image, extra).await
    }

    pub async fn image_id(&self) -> String {
        let listed = self
            .client
            .action("DescribeImages", &[])
            .await
            .expect("DescribeImages");
        texts(&listed, "imageId")
            .into_iter()
            .next()
            .expect("the imported image")
    }

    pub async fn instances(&self) -> Vec<InstanceRow> {
        self.api
            .cloud
            .db
            .instances("acme", None)
            .await
            .expect("read instances")
    }

    /// Waits up to `limit` for every instance to leave pending.
    pub async fn settle(&self, limit: Duration) -> Vec<InstanceRow> {
        let deadline = Instant::now() + limit;
        loop {
            let rows = self.instances().await;
            if rows.iter().all(|r| r.state != "pending") || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every domain on every host: name → hosts holding it.
    pub async fn domains(&self) -> HashMap<String, Vec<String>> {
        let mut all: HashMap<String, Vec<String>> = HashMap::new();
        for (host, fake) in &self.fakes {
            for (name, _) in fake.list().await.expect("list domains") {
                all.entry(name).or_default().push(host.to_string());
            }
        }
        all
    }

    /// Addresses the network controller holds: ec2 id → addresses.
    pub async fn held_addresses(&self) -> HashMap<String, Vec<String>> {
        let store = self.network.ipam().store();
        let mut held: HashMap<String, Vec<String>> = HashMap::new();
        for net in store.networks().await.expect("networks") {
            for (_, hostname, address) in store.dhcp_hosts(net.slot).await.expect("hosts") {
                held.entry(hostname).or_default().push(address.to_string());
            }
        }
        held
    }

    pub async fn stop(self) {
        for worker in &self.workers {
            worker.periodic.cancel();
        }
        for t in &self.transports {
            t.close().await;
        }
    }
}

/// RunInstances of one m1.tiny of `image` through `client`, with `extra`
/// parameters; the response document.
pub async fn run_one(
    client: &Client,
    image: &str,
    extra: &[(&str, &str)],
) -> Result<String, stratus::ec2_client::Ec2ClientError> {
    let mut params = vec![
        ("ImageId", image),
        ("InstanceType", "m1.tiny"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
    ];
    params.extend_from_slice(extra);
    client.action("RunInstances", &params).await
}
