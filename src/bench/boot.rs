//! `stratus bench boot`: one guest of the tiny image from the RunInstances
//! request to its boot marker on the console, through every service of the
//! all-in-one on real libvirt in a scratch namespace; the same kernel,
//! initramfs and disk booted by a bare `qemu-system-x86_64` to the same
//! marker; their ratio; and the time to the first successful SSH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::config::Config;
use crate::ec2_client::{Client, first_text};
use crate::services::{Running, Service, embedded_config, start_services};

use super::BenchError;
use super::guest::{SSH_OPTIONS, build_image, overlay};
use super::stats::{median, ratio};

/// Sizes of `stratus bench boot`.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Boots of each kind (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The tiny image builder (run from a checkout, the default finds it).
    #[arg(long, default_value = "deploy/images/build-tiny-image")]
    pub builder: std::path::PathBuf,
}

super::error::bench_steps!("boot");

const MARKER: &str = "STRATUS-BOOT ready";

/// Waits for `MARKER` in `file`, polling every 20 ms.
async fn marker(file: &Path, limit: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(file).is_ok_and(|t| t.contains(MARKER)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::new(
                "boot",
                format!("no boot marker in {} within {limit:?}", file.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Removes the scratch namespace and its daemon however the run ends.
struct Scratch {
    netns: String,
    libvirt: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        stratus_compute::host::libvirtd::PrivateLibvirtd::stop_at(&self.netns, &self.libvirt);
        stratus_host::netns::remove(&self.netns);
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(base: &Config, options: Options) -> Result<(), BenchError> {
    let work = tempfile::tempdir().map_err(fail("scratch folder"))?;
    let image = work.path().join("image");
    build_image("boot", &options.builder, &image)?;
    let runs = options.runs.max(1);
    let cloud = Cloud::start(base, work.path(), &image).await?;
    let mut stratus_boots = Vec::new();
    let mut ssh_times = Vec::new();
    for _ in 0..runs {
        let (booted, ssh) = cloud.boot().await?;
        stratus_boots.push(booted);
        ssh_times.push(ssh);
    }
    let mut bare = Vec::new();
    for n in 0..runs {
        let took = bare_boot(&image, work.path(), n, &cloud.config.compute.kernel_cmdline).await?;
        println!("bare qemu boot {n}: marker {:.2} s", took.as_secs_f64());
        bare.push(took);
    }
    cloud.running.stop().await;

    let (ours, theirs, ssh) = (median(stratus_boots), median(bare), median(ssh_times));
    println!(
        "RunInstances to boot marker: {:.2} s (median of {runs})",
        ours.as_secs_f64(),
    );
    println!(
        "bare qemu-system-x86_64 to boot marker: {:.2} s",
        theirs.as_secs_f64()
    );
    println!("time to first SSH: {:.2} s", ssh.as_secs_f64());
    println!("boot ratio to bare qemu: {:.2}", ratio(ours, theirs));
    Ok(())
}

/// Every service of the all-in-one on real libvirt in a scratch namespace,
/// the tiny image imported, a key pair made and SSH let in.
struct Cloud {
    config: Config,
    running: Running,
    ec2: Client,
    image_id: String,
    key_file: PathBuf,
    // Last, so the services stop before their namespace goes.
    scratch: Scratch,
}

impl Cloud {
    async fn start(base: &Config, work: &Path, image: &Path) -> Result<Self, BenchError> {
        let netns = format!(
            "st-boot-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail("port"))?
            .port();
        let mut config = embedded_config(base, Some(&netns));
        config.node.state_dir = work.join("state");
        config.node.host = "bench".parse().ok();
        config.api.listen = format!("127.0.0.1:{port}");
        config.compute.driver = stratus_compute::config::DriverKind::Libvirt;
        config.compute.libvirt_uri = stratus_compute::config::ComputeConfig::default().libvirt_uri;
        // The bench reaches its guests inside the namespace; a public link
        // would put a second copy of the public range's gateway on the host,
        // beside a running all-in-one's.
        config.network.public_range = String::new();
        config.api.public = None;
        let scratch = Scratch {
            netns,
            libvirt: config.node.state_dir.join("libvirt"),
        };
        let running = start_services(&config, &Service::ALL)
            .await
            .map_err(fail("starting the services"))?;
        let (ec2, image_id) = import_and_sign_in(&config, image, port).await?;
        let key_file = work.join("bench.pem");
        let_in_by_key(&ec2, &key_file).await?;
        Ok(Self {
            config,
            running,
            ec2,
            image_id,
            key_file,
            scratch,
        })
    }

    /// One guest from RunInstances to its marker and to its first SSH,
    /// then terminated; both times.
    async fn boot(&self) -> Result<(Duration, Duration), BenchError> {
        let t0 = Instant::now();
        let ran = self
            .action(
                "RunInstances",
                &[
                    ("ImageId", self.image_id.as_str()),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "m1.tiny"),
                    ("KeyName", "bench"),
                ],
            )
            .await?;
        let id = first(&ran, "instanceId");
        let console = self
            .config
            .node
            .state_dir
            .join("instances")
            .join(format!("instance-{}", id.trim_start_matches("i-")))
            .join("console.log");
        marker(&console, Duration::from_secs(300)).await?;
        let booted = t0.elapsed();
        let described = self
            .action("DescribeInstances", &[("InstanceId.1", id.as_str())])
            .await?;
        let address = first(&described, "privateIpAddress");
        self.wait_for_ssh(&address).await?;
        let ssh = t0.elapsed();
        println!(
            "stratus boot {id}: marker {:.2} s, first SSH {:.2} s after RunInstances",
            booted.as_secs_f64(),
            ssh.as_secs_f64()
        );
        self.action("TerminateInstances", &[("InstanceId.1", id.as_str())])
            .await?;
        Ok((booted, ssh))
    }

    async fn action(&self, action: &str, params: &[(&str, &str)]) -> Result<String, BenchError> {
        self.ec2.action(action, params).await.map_err(fail(action))
    }

    /// Tries SSH from inside the namespace every 100 ms, for two minutes.
    async fn wait_for_ssh(&self, address: &str) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ssh_once(&self.scratch.netns, &self.key_file, address) {
            if Instant::now() > deadline {
                return Err(BenchError::new(
                    "boot",
                    format!("no SSH to {address} within 2 minutes of the marker"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// The first `name` element's text in `xml`, or nothing.
fn first(xml: &str, name: &str) -> String {
    first_text(xml, name).unwrap_or_default()
}

/// Imports the tiny image and makes credentials; the signed client and the
/// image id.
async fn import_and_sign_in(
    config: &Config,
    image: &Path,
    port: u16,
) -> Result<(Client, String), BenchError> {
    let db = stratus_api::start::open_db(&config.api, &config.node.state_dir)
        .await
        .map_err(fail("database"))?;
    let imported = stratus_api::admin::import_image(
        &db,
        "bench-tiny",
        &image.join("disk.qcow2"),
        Some(&image.join("kernel")),
        Some(&image.join("ramdisk")),
    )
    .await
    .map_err(fail("import"))?;
    let c = stratus_api::admin::create_credentials(&db, "bench", "bench", false)
        .await
        .map_err(fail("credentials"))?;
    let ec2 = Client::new(
        &format!("http://127.0.0.1:{port}/"),
        &config.api.region,
        &c.access_key,
        &c.secret_key,
    );
    Ok((ec2, imported.image_id))
}

/// Makes the key pair `bench`, writes its private key to `key_file`, and
/// opens port 22 in the default group.
async fn let_in_by_key(ec2: &Client, key_file: &Path) -> Result<(), BenchError> {
    let made = ec2
        .action(
            "CreateKeyPair",
            &[("KeyName", "bench"), ("KeyType", "ed25519")],
        )
        .await
        .map_err(fail("CreateKeyPair"))?;
    crate::demo::write_private(key_file, &first(&made, "keyMaterial")).map_err(fail("key file"))?;
    ec2.action(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupName", "default"),
            ("IpProtocol", "tcp"),
            ("FromPort", "22"),
            ("ToPort", "22"),
            ("CidrIp", "0.0.0.0/0"),
        ],
    )
    .await
    .map_err(fail("AuthorizeSecurityGroupIngress"))?;
    Ok(())
}

/// One SSH attempt to `root@address` from inside `netns`.
fn ssh_once(netns: &str, key_file: &Path, address: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "ssh", "-i"])
        .arg(key_file)
        .args(SSH_OPTIONS)
        .arg(format!("root@{address}"))
        .arg("true")
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Boot `n` of the image's kernel, initramfs and an overlay of its disk by
/// a bare QEMU, to the marker on its console.
async fn bare_boot(
    image: &Path,
    work: &Path,
    n: usize,
    cmdline: &str,
) -> Result<Duration, BenchError> {
    let disk = work.join(format!("bare-{n}.qcow2"));
    overlay("boot", &image.join("disk.qcow2"), &disk)?;
    let console = work.join(format!("bare-{n}.log"));
    let accel = if stratus_compute::config::kvm_usable() {
        "kvm"
    } else {
        "tcg"
    };
    let t0 = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            &format!("q35,accel={accel}"),
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(image.join("kernel"))
        .arg("-initrd")
        .arg(image.join("ramdisk"))
        .args(["-append", cmdline])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
        .args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(fail("qemu-system-x86_64"))?;
    let result = marker(&console, Duration::from_secs(300)).await;
    let took = t0.elapsed();
    let _ = qemu.kill();
    let _ = qemu.wait();
    result?;
    Ok(took)
}
