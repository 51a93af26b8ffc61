//! A cloud in this test process for the fault tests: `FakeCloud` (the api
//! on SQLite, the scheduler, the network controller and N fake-driver
//! compute workers) with each service on a RabbitMQ connection of its own,
//! a signed EC2 client, and what the tests read of it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stratus::ec2_client::{Client, texts};
use stratus::fake_cloud::{FakeCloud, Options};
use stratus_api::config::Quotas;
use stratus_api::db::instances::InstanceRow;
use stratus_compute::driver::VirtDriver;
use stratus_rpc::config::RpcConfig;
use stratus_rpc::wire::conductor::InstanceState;

/// A service's connection to the test's broker, under way.
type Connecting = std::pin::Pin<
    Box<dyn Future<Output = Result<std::sync::Arc<dyn stratus_rpc::Transport>, String>> + Send>,
>;

/// The cloud, the client of project `acme`, and how its services reach the bus.
pub struct Cloud {
    cloud: FakeCloud,
    pub client: Client,
    /// How its services reach the bus.
    pub rpc: RpcConfig,
}

impl std::ops::Deref for Cloud {
    type Target = FakeCloud;

    fn deref(&self) -> &FakeCloud {
        &self.cloud
    }
}

impl Cloud {
    /// Starts every service over `rpc`; waits until `hosts` workers report.
    pub async fn start(rpc: &RpcConfig, hosts: usize, build_timeout_secs: u64) -> Self {
        let options = Options {
            hosts,
            host_vcpus: 64,
            host_memory_mb: 64 * 1024,
            quotas: Quotas {
                instances: 1000,
                vcpus: 1000,
                memory_mb: 1 << 30,
                ..Quotas::default()
            },
            database_url: None,
            build_timeout_secs,
            call_timeout: Duration::from_millis(rpc.call_timeout_ms),
            public: None,
        };
        let connect = |name: &str| {
            let (rpc, name) = (rpc.clone(), name.to_owned());
            let connected: Connecting = Box::pin(async move {
                stratus_rpc::transport::connect(&rpc, &name)
                    .await
                    .map_err(|e| e.to_string())
            });
            connected
        };
        let cloud = FakeCloud::start_on(options, &connect)
            .await
            .expect("the cloud on the test's broker");
        let credentials =
            stratus_api::admin::create_credentials(&cloud.api.cloud.db, "acme", "ann", false)
                .await
                .expect("credentials");
        let disk = cloud.images.join("disk.qcow2");
        stratus_test_support::images::qcow2(&disk, "64M");
        let client = Client::new(
            &cloud.endpoint,
            &cloud.api.cloud.config.region,
            &credentials.access_key,
            &credentials.secret_key,
        );
        Self {
            cloud,
            client,
            rpc: rpc.clone(),
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

    /// The row of the instance with this EC2 id, which must be there.
    pub async fn row(&self, ec2_id: &str) -> InstanceRow {
        self.api
            .cloud
            .db
            .instance_by_ec2_id(ec2_id)
            .await
            .expect("read")
            .expect("the instance's row")
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
            if rows.iter().all(|r| r.state != InstanceState::Pending) || Instant::now() > deadline {
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
        for worker in &self.cloud.workers {
            worker.periodic.cancel();
        }
        for t in &self.cloud.transports {
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
