//! `stratus bench spawn`: one guest from run_instance to domain RUNNING on
//! real libvirt (TCG, in a scratch namespace with a private libvirtd), split
//! by step, next to a bare `qemu-system-x86_64` start of the same kernel,
//! initramfs and disk, measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_host::{FakeHost, RealHost};
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_network::service::NetworkService;
use stratus_rpc::handler::null;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::compute::{Flavor, ImageRef, RunInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{Handler, HandlerError, RequestContext, Transport};

use crate::config::{ComputeConfig, VirtType};
use crate::driver::libvirt::LibvirtDriver;
use crate::host::libvirtd::PrivateLibvirtd;
use crate::manager::BuildTimings;
use crate::worker::{WorkerSetup, start};
use crate::xml::DomainType;

/// A benchmark step failed.
#[derive(Debug, thiserror::Error)]
#[error("bench spawn: {0}")]
pub struct BenchError(String);

fn fail(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> BenchError + '_ {
    move |e| BenchError(format!("{what}: {e}"))
}

struct Scratch {
    netns: String,
    dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ignores instance updates.
struct Sink;

#[async_trait]
impl Handler for Sink {
    async fn handle(
        &self,
        _: &RequestContext,
        _: &str,
        _: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        Ok(null())
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `runs` spawns and as many bare QEMU starts; prints the figures.
pub async fn run(builder: &Path, runs: usize) -> Result<(), BenchError> {
    let id = InstanceId::new().0.simple().to_string();
    let scratch = Scratch {
        netns: format!("stratus-bench-{}", &id[..8]),
        dir: std::env::temp_dir().join(format!("stratus-bench-spawn-{id}")),
    };
    let ok = Command::new("ip")
        .args(["netns", "add", &scratch.netns])
        .status()
        .map_err(|e| fail("ip netns add")(&e))?;
    if !ok.success() {
        return Err(BenchError("creating a network namespace needs root".into()));
    }
    let image_dir = scratch.dir.join("image");
    let state_dir = scratch.dir.join("state");
    for dir in [&image_dir, &state_dir] {
        std::fs::create_dir_all(dir).map_err(|e| fail("scratch folder")(&e))?;
    }
    use std::os::unix::fs::PermissionsExt;
    for dir in [&scratch.dir, &state_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| fail("chmod")(&e))?;
    }
    let built = Command::new(builder)
        .arg(&image_dir)
        .output()
        .map_err(|e| fail("image builder")(&e))?;
    if !built.status.success() {
        return Err(BenchError(format!(
            "{}: {}",
            builder.display(),
            String::from_utf8_lossy(&built.stderr)
        )));
    }
    let image = ImageRef {
        id: "ami-be4c000000000001".into(),
        disk: image_dir.join("disk.qcow2"),
        kernel: Some(image_dir.join("kernel")),
        ramdisk: Some(image_dir.join("ramdisk")),
        properties: Default::default(),
    };

    let daemon = PrivateLibvirtd::start(&scratch.netns, &scratch.dir.join("libvirtd"))
        .map_err(|e| fail("libvirtd")(&e))?;
    let driver = LibvirtDriver::connect(daemon.uri(), DomainType::Qemu)
        .await
        .map_err(|e| fail("connect")(&e))?;
    let bus = MemoryTransport::new(16, Duration::from_millis(100));
    let network_config = NetworkConfig {
        dhcp: false,
        ..NetworkConfig::default()
    };
    let network = NetworkManager::start(
        &network_config,
        &state_dir.join("network"),
        Arc::new(FakeHost::new()),
    )
    .await
    .map_err(|e| fail("network")(&e))?;
    let _network = bus
        .serve(
            "network",
            None,
            Arc::new(NetworkService::new(Arc::new(network))),
        )
        .await
        .map_err(|e| fail("serve")(&e))?;
    let _conductor = bus
        .serve("conductor", None, Arc::new(Sink))
        .await
        .map_err(|e| fail("serve")(&e))?;
    let config = ComputeConfig {
        virt_type: VirtType::Qemu,
        ..ComputeConfig::default()
    };
    let worker = start(WorkerSetup {
        host: "bench".parse().map_err(|e| fail("host")(&e))?,
        state_dir: &state_dir,
        config: &config,
        vlan_interface: "eth0".into(),
        transport: Arc::new(bus.clone()),
        call_timeout: Duration::from_secs(30),
        host_commands: Some(Arc::new(RealHost::in_netns(&scratch.netns))),
        driver: Some(Arc::new(driver)),
        metadata: None,
    })
    .await
    .map_err(|e| fail("worker")(&e))?;

    let ctx = RequestContext::system();
    let mut all: Vec<BuildTimings> = Vec::new();
    for _ in 0..runs.max(1) {
        let request = RunInstance {
            instance_id: InstanceId::new(),
            project_id: "bench".parse().map_err(|e| fail("project")(&e))?,
            flavor: Flavor {
                name: "m1.tiny".into(),
                vcpus: 1,
                memory_mb: 256,
                root_gb: 0,
            },
            image: image.clone(),
            security_groups: vec![],
            key_data: None,
            key_name: None,
            user_data: None,
            reservation_id: None,
            placement: Default::default(),
        };
        let timings = worker
            .manager
            .run_instance(&ctx, &request)
            .await
            .ok_or_else(|| BenchError("the guest did not reach running (see the log)".into()))?;
        all.push(timings);
        worker
            .manager
            .terminate_instance(&ctx, request.instance_id)
            .await;
    }
    worker.periodic.cancel();

    let bare = bare_qemu(&image, &scratch.dir, runs.max(1))?;
    let pick = |f: fn(&BuildTimings) -> Duration| median(all.iter().map(f).collect());
    println!(
        "spawn: run_instance received -> domain RUNNING (libvirt, TCG), median of {} runs:",
        all.len()
    );
    println!("  ip + bridge  {:>8.1} ms", ms(pick(|t| t.network)));
    println!("  image        {:>8.1} ms", ms(pick(|t| t.image)));
    println!("  prepare disk {:>8.1} ms", ms(pick(|t| t.prepare)));
    println!("  xml          {:>8.1} ms", ms(pick(|t| t.xml)));
    println!("  firewall     {:>8.1} ms", ms(pick(|t| t.firewall)));
    println!("  libvirt      {:>8.1} ms", ms(pick(|t| t.libvirt)));
    println!("  total        {:>8.1} ms", ms(pick(|t| t.total)));
    println!(
        "bare qemu-system-x86_64 start of the same kernel, initramfs and disk: {:>8.1} ms",
        ms(bare)
    );
    drop(daemon);
    Ok(())
}

/// `qemu-system-x86_64 -daemonize` returns once the VM is created and
/// running: the same point libvirt's RUNNING marks.
fn bare_qemu(image: &ImageRef, dir: &Path, runs: usize) -> Result<Duration, BenchError> {
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut times = Vec::new();
    for run in 0..runs {
        let overlay = dir.join(format!("bare-{run}.qcow2"));
        let pidfile = dir.join(format!("bare-{run}.pid"));
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&image.disk)
            .arg(&overlay)
            .status()
            .map_err(|e| fail("qemu-img")(&e))?;
        if !made.success() {
            return Err(BenchError("qemu-img create failed".into()));
        }
        let started = Instant::now();
        let out = Command::new("qemu-system-x86_64")
            .args([
                "-accel",
                "tcg",
                "-m",
                "256",
                "-nodefaults",
                "-display",
                "none",
                "-daemonize",
            ])
            .args([
                "-kernel",
                &path(&image.kernel),
                "-initrd",
                &path(&image.ramdisk),
            ])
            .args(["-append", "root=/dev/vda console=ttyS0"])
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=qcow2", overlay.display()))
            .arg("-serial")
            .arg(format!(
                "file:{}",
                dir.join(format!("bare-{run}.log")).display()
            ))
            .arg("-pidfile")
            .arg(&pidfile)
            .output()
            .map_err(|e| fail("qemu-system-x86_64")(&e))?;
        let took = started.elapsed();
        if !out.status.success() {
            return Err(BenchError(format!(
                "bare qemu: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        times.push(took);
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
    Ok(median(times))
}
