//! `stratus bench boot`: one guest of the tiny image from the RunInstances
//! request to its boot marker on the console, through every service of the
//! all-in-one on real libvirt in a scratch namespace; the same kernel,
//! initramfs and disk booted by a bare `qemu-system-x86_64` to the same
//! marker; their ratio; and the time to the first successful SSH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::ec2_client::{Client, texts};
use crate::services::{Service, embedded_config, start_services};

/// Sizes of the run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Boots of each kind (the median is printed).
    pub runs: usize,
    /// The tiny image builder.
    pub builder: PathBuf,
}

/// The benchmark failed.
#[derive(Debug, thiserror::Error)]
#[error("bench boot: {0}")]
pub struct BenchError(String);

fn fail(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> BenchError {
    move |e| BenchError(format!("{what}: {e}"))
}

const MARKER: &str = "STRATUS-BOOT ready";

/// Waits for `MARKER` in `file`, polling every 20 ms.
async fn marker(file: &Path, limit: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(file).is_ok_and(|t| t.contains(MARKER)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!(
                "no boot marker in {} within {limit:?}",
                file.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
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
    let work = tempfile::tempdir().map_err(|e| fail("scratch folder")(&e))?;
    let image = work.path().join("image");
    let built = Command::new(&options.builder)
        .arg(&image)
        .output()
        .map_err(|e| fail("image builder")(&e))?;
    if !built.status.success() {
        return Err(BenchError(format!(
            "image builder: {}",
            String::from_utf8_lossy(&built.stderr)
        )));
    }
    let netns = format!(
        "st-boot-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| fail("port")(&e))?
        .port();
    let mut config = embedded_config(base, Some(&netns));
    config.node.state_dir = work.path().join("state");
    config.node.host = "bench".parse().ok();
    config.api.listen = format!("127.0.0.1:{port}");
    config.compute.driver = stratus_compute::config::DriverKind::Libvirt;
    config.compute.libvirt_uri = stratus_compute::config::ComputeConfig::default().libvirt_uri;
    let _scratch = Scratch {
        netns: netns.clone(),
        libvirt: config.node.state_dir.join("libvirt"),
    };
    let running = start_services(&config, &Service::ALL)
        .await
        .map_err(|e| fail("starting the services")(&e))?;

    let db = stratus_api::start::open_db(&config.api, &config.node.state_dir)
        .await
        .map_err(|e| fail("database")(&e))?;
    let imported = stratus_api::admin::import_image(
        &db,
        "bench-tiny",
        &image.join("disk.qcow2"),
        Some(&image.join("kernel")),
        Some(&image.join("ramdisk")),
    )
    .await
    .map_err(|e| fail("import")(&e))?;
    let c = stratus_api::admin::create_credentials(&db, "bench", "bench", false)
        .await
        .map_err(|e| fail("credentials")(&e))?;
    let ec2 = Client::new(
        &format!("http://127.0.0.1:{port}/"),
        &config.api.region,
        &c.access_key,
        &c.secret_key,
    );
    let made = ec2
        .action(
            "CreateKeyPair",
            &[("KeyName", "bench"), ("KeyType", "ed25519")],
        )
        .await
        .map_err(|e| fail("CreateKeyPair")(&e))?;
    let key_file = work.path().join("bench.pem");
    let private = texts(&made, "keyMaterial")
        .into_iter()
        .next()
        .unwrap_or_default();
    crate::demo::write_private(&key_file, &private).map_err(|e| fail("key file")(&e))?;
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
    .map_err(|e| fail("AuthorizeSecurityGroupIngress")(&e))?;

    let mut stratus_boots = Vec::new();
    let mut ssh_times = Vec::new();
    for _ in 0..options.runs.max(1) {
        let t0 = Instant::now();
        let ran = ec2
            .action(
                "RunInstances",
                &[
                    ("ImageId", imported.image_id.as_str()),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "m1.tiny"),
                    ("KeyName", "bench"),
                ],
            )
            .await
            .map_err(|e| fail("RunInstances")(&e))?;
        let id = texts(&ran, "instanceId")
            .into_iter()
            .next()
            .unwrap_or_default();
        let console = config
            .node
            .state_dir
            .join("instances")
            .join(format!("instance-{}", id.trim_start_matches("i-")))
            .join("console.log");
        marker(&console, Duration::from_secs(300)).await?;
        let booted = t0.elapsed();
        let described = ec2
            .action("DescribeInstances", &[("InstanceId.1", id.as_str())])
            .await
            .map_err(|e| fail("DescribeInstances")(&e))?;
        let address = texts(&described, "privateIpAddress")
            .into_iter()
            .next()
            .unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &netns, "ssh", "-i"])
                .arg(&key_file)
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "LogLevel=ERROR",
                    "-o",
                    "ConnectTimeout=5",
                ])
                .arg(format!("root@{address}"))
                .arg("true")
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError(format!(
                    "no SSH to {address} within 2 minutes of the marker"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ssh = t0.elapsed();
        println!(
            "stratus boot {id}: marker {:.2} s, first SSH {:.2} s after RunInstances",
            booted.as_secs_f64(),
            ssh.as_secs_f64()
        );
        stratus_boots.push(booted);
        ssh_times.push(ssh);
        ec2.action("TerminateInstances", &[("InstanceId.1", id.as_str())])
            .await
            .map_err(|e| fail("TerminateInstances")(&e))?;
    }

    let mut bare = Vec::new();
    for n in 0..options.runs.max(1) {
        let disk = work.path().join(format!("bare-{n}.qcow2"));
        let base_disk = image.join("disk.qcow2");
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&base_disk)
            .arg(&disk)
            .status()
            .map_err(|e| fail("qemu-img")(&e))?;
        if !made.success() {
            return Err(BenchError("qemu-img create failed".into()));
        }
        let console = work.path().join(format!("bare-{n}.log"));
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
            .args(["-append", &config.compute.kernel_cmdline])
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
            .map_err(|e| fail("qemu-system-x86_64")(&e))?;
        let result = marker(&console, Duration::from_secs(300)).await;
        let took = t0.elapsed();
        let _ = qemu.kill();
        let _ = qemu.wait();
        result?;
        println!("bare qemu boot {n}: marker {:.2} s", took.as_secs_f64());
        bare.push(took);
    }
    running.stop().await;

    let (ours, theirs, ssh) = (median(stratus_boots), median(bare), median(ssh_times));
    println!(
        "RunInstances to boot marker: {:.2} s (median of {})",
        ours.as_secs_f64(),
        options.runs.max(1)
    );
    println!(
        "bare qemu-system-x86_64 to boot marker: {:.2} s",
        theirs.as_secs_f64()
    );
    println!("time to first SSH: {:.2} s", ssh.as_secs_f64());
    println!(
        "boot ratio to bare qemu: {:.2}",
        ours.as_secs_f64() / theirs.as_secs_f64().max(1e-9)
    );
    Ok(())
}
