//! The EC2 API driven by the real AWS CLI and boto3 (api/tests/ec2/life.py)
//! against a cloud in this process: the api service on a loopback port,
//! the scheduler, a network controller and two compute workers on the fake
//! driver, over the in-process bus. Every response the clients got is then
//! checked against botocore's EC2 model (api/tests/ec2/ec2_check.py).

use std::path::{Path, PathBuf};
use std::process::Command;
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

/// The Python the dev setup prepares, with boto3 and the AWS CLI.
pub const VENV: &str = "/var/lib/stratus-dev/venv";

/// A cloud in this process, serving the EC2 API on loopback.
pub struct Cloud {
    /// Where the EC2 API listens.
    pub endpoint: String,
    /// The api service.
    pub api: stratus_api::start::Api,
    /// Folder image files may be registered from.
    pub images: PathBuf,
    _workers: Vec<Worker>,
    _servers: Vec<ServerHandle>,
    /// Scratch space (state folders, databases).
    pub dir: tempfile::TempDir,
}

impl Cloud {
    /// Starts every service with `quotas`.
    pub async fn start(quotas: Quotas) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = MemoryTransport::new(64, Duration::from_millis(100));
        let transport: Arc<dyn Transport> = Arc::new(bus.clone());
        let rpc = RpcClient::new(transport.clone(), Duration::from_secs(10));
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
        let scheduler = Arc::new(SchedulerService::new(&SchedulerConfig::default(), rpc.clone()));
        let mut servers = vec![
            bus.serve(
                "network",
                None,
                Arc::new(stratus_network::service::NetworkService::new(Arc::new(network))),
            )
            .await
            .expect("serve network"),
            bus.serve("scheduler", None, scheduler.clone())
                .await
                .expect("serve scheduler"),
        ];
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).expect("images");
        let config = ApiConfig {
            listen: "127.0.0.1:0".into(),
            metadata_listen: "127.0.0.1:0".into(),
            quotas,
            image_roots: vec![images.clone()],
            ..ApiConfig::default()
        };
        let api = stratus_api::start::start(&config, &dir.path().join("api"), rpc.clone())
            .await
            .expect("api");
        servers.push(
            bus.serve("conductor", None, api.conductor.clone())
                .await
                .expect("serve conductor"),
        );
        let mut workers = Vec::new();
        for name in ["node-a", "node-b"] {
            let host: HostName = name.parse().expect("host");
            let worker = stratus_compute::worker::start(WorkerSetup {
                host: host.clone(),
                state_dir: &dir.path().join(name),
                config: &ComputeConfig {
                    driver: DriverKind::Fake,
                    report_interval_secs: 1,
                    vcpus: Some(8),
                    memory_mb: Some(8192),
                    disk_gb: Some(100),
                    ..ComputeConfig::default()
                },
                vlan_interface: "eth0".into(),
                transport: transport.clone(),
                call_timeout: Duration::from_secs(10),
                host_commands: Some(Arc::new(FakeHost::new())),
                driver: Some(Arc::new(FakeDriver::new())),
                metadata: None,
            })
            .await
            .expect("worker");
            servers.push(
                bus.serve("compute", Some(&host), worker.service.clone())
                    .await
                    .expect("serve compute"),
            );
            workers.push(worker);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while scheduler.placer().hosts(Instant::now()).len() < 2 {
            assert!(Instant::now() < deadline, "compute hosts never reported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            endpoint: format!("http://{}/", api.ec2_address),
            api,
            images,
            _workers: workers,
            _servers: servers,
            dir,
        }
    }

    /// A new access key for `user` in `project`: (key, secret).
    pub async fn credentials(&self, project: &str, user: &str) -> (String, String) {
        let c = stratus_api::admin::create_credentials(&self.api.cloud.db, project, user, false)
            .await
            .expect("credentials");
        (c.access_key, c.secret_key)
    }

    /// A small raw disk holding an ext4 file system (keys are injected into
    /// it for real), under the image folder.
    pub fn image_file(&self) -> PathBuf {
        let path = self.images.join("disk.img");
        std::fs::File::create(&path)
            .and_then(|f| f.set_len(64 << 20))
            .expect("image file");
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&path)
            .output()
            .expect("mkfs.ext4 (deploy/dev-setup installs e2fsprogs)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        path
    }
}

fn api_tests() -> PathBuf {
    stratus_tests::workspace_root().join("api/tests/ec2")
}

/// Runs a Python file from the venv; panics with its output if it fails.
pub async fn python(script: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(format!("{VENV}/bin/python"));
    command.arg(script).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.env("AWS_CLI", format!("{VENV}/bin/aws"));
    let out = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("the script finished within 10 minutes")
        .expect("the venv python runs (deploy/dev-setup makes it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_cli_and_boto3_live_a_whole_life_and_every_response_fits_botocore() {
    let cloud = Cloud::start(Quotas {
        instances: 8,
        ..Quotas::default()
    })
    .await;
    let (alpha_key, alpha_secret) = cloud.credentials("alpha", "alice").await;
    let (beta_key, beta_secret) = cloud.credentials("beta", "bob").await;
    let image = cloud.image_file();
    let responses = cloud.dir.path().join("responses");
    std::fs::create_dir_all(&responses).expect("responses");
    let out = python(
        &api_tests().join("life.py"),
        &[],
        &[
            ("STRATUS_ENDPOINT", &cloud.endpoint),
            ("ALPHA_KEY", &alpha_key),
            ("ALPHA_SECRET", &alpha_secret),
            ("BETA_KEY", &beta_key),
            ("BETA_SECRET", &beta_secret),
            ("IMAGE_PATH", &image.display().to_string()),
            ("RESPONSES_DIR", &responses.display().to_string()),
        ],
    )
    .await;
    assert!(out.contains("life ok"), "{out}");
    let saved = std::fs::read_dir(&responses).expect("responses").count();
    assert!(saved > 60, "only {saved} responses saved");
    let report = python(
        &api_tests().join("ec2_check.py"),
        &["--dir", &responses.display().to_string()],
        &[],
    )
    .await;
    println!("{report}");
}

#[tokio::test]
async fn the_response_checker_passes_its_own_tests() {
    python(&api_tests().join("test_ec2_check.py"), &[], &[]).await;
}
