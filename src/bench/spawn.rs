//! `stratus bench spawn`: one guest from run_instance to domain RUNNING on
//! real libvirt (TCG, in a scratch namespace with a private libvirtd), split
//! by step, next to a bare `qemu-system-x86_64` start of the same kernel,
//! initramfs and disk, measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args;
use serde_json::value::RawValue;
use stratus_host::{FakeHost, RealHost};
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_network::service::NetworkService;
use stratus_rpc::handler::null;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::compute::ImageRef;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{Handler, HandlerError, RequestContext, ServerHandle, Transport};

use stratus_compute::config::{ComputeConfig, VirtType};
use stratus_compute::driver::libvirt::LibvirtDriver;
use stratus_compute::host::libvirtd::PrivateLibvirtd;
use stratus_compute::manager::BuildTimings;
use stratus_compute::worker::{Worker, WorkerSetup, start};
use stratus_compute::xml::DomainType;

use super::BenchError;
use super::guest::{ScratchNetns, build_image, disk_image, overlay, request, tiny_flavor};
use super::stats::{median, ms};

/// Sizes of `stratus bench spawn`.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Guests to spawn (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The image builder (run from a checkout, the default finds it).
    #[arg(long, default_value = "deploy/images/build-test-image")]
    pub builder: std::path::PathBuf,
}

super::error::bench_steps!("spawn");

/// The run's namespace and folder, removed however it ends.
struct Scratch {
    netns: ScratchNetns,
    dir: PathBuf,
}

impl Scratch {
    /// The namespace, and the folder with `image/` and `state/` in it,
    /// readable by the private libvirtd's QEMU.
    fn create() -> Result<Self, BenchError> {
        let id = InstanceId::new().0.simple().to_string();
        let scratch = Self {
            netns: ScratchNetns::add("spawn", format!("stratus-bench-{}", &id[..8]))?,
            dir: std::env::temp_dir().join(format!("stratus-bench-spawn-{id}")),
        };
        for dir in [scratch.image_dir(), scratch.state_dir()] {
            std::fs::create_dir_all(dir).map_err(fail("scratch folder"))?;
        }
        use std::os::unix::fs::PermissionsExt;
        for dir in [scratch.dir.clone(), scratch.state_dir()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(fail("chmod"))?;
        }
        Ok(scratch)
    }

    fn image_dir(&self) -> PathBuf {
        self.dir.join("image")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ignores instance updates; grants every build claim (one worker, no
/// duplicates) and knows no instance.
struct Sink;

#[async_trait]
impl Handler for Sink {
    async fn handle(
        &self,
        _: &RequestContext,
        method: &str,
        _: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        use stratus_rpc::wire::conductor::{ClaimAnswer, KnownInstance};
        match method {
            "claim_build" => stratus_rpc::handler::encode_result(&ClaimAnswer::Granted),
            "instance_states" => stratus_rpc::handler::encode_result(&Vec::<KnownInstance>::new()),
            _ => Ok(null()),
        }
    }
}

/// Runs `runs` spawns and as many bare QEMU starts; prints the figures.
pub async fn run(options: &Options) -> Result<(), BenchError> {
    let (builder, runs) = (options.builder.as_path(), options.runs);
    let scratch = Scratch::create()?;
    let image_dir = scratch.image_dir();
    build_image("spawn", builder, &image_dir)?;
    let image = ImageRef {
        kernel: Some(image_dir.join("kernel")),
        ramdisk: Some(image_dir.join("ramdisk")),
        ..disk_image("ami-be4c000000000001", &image_dir.join("disk.qcow2"))
    };
    let rig = Rig::start(&scratch).await?;
    let all = rig.spawn(&image, runs.max(1)).await?;
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
    drop(rig);
    Ok(())
}

/// A compute worker on a private libvirtd in the scratch namespace, with a
/// network controller (fake host) and a conductor that ignores updates on
/// the in-process bus.
struct Rig {
    worker: Worker,
    _serving: Vec<ServerHandle>,
    // Last, so the daemon outlives the worker's connection to it.
    _daemon: PrivateLibvirtd,
}

impl Rig {
    async fn start(scratch: &Scratch) -> Result<Self, BenchError> {
        let netns = scratch.netns.name();
        let state_dir = scratch.state_dir();
        let daemon = PrivateLibvirtd::start(netns, &scratch.dir.join("libvirtd"))
            .map_err(fail("libvirtd"))?;
        let driver = LibvirtDriver::connect(daemon.uri(), DomainType::Qemu)
            .await
            .map_err(fail("connect"))?;
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
        .map_err(fail("network"))?;
        let network: Arc<dyn Handler> = Arc::new(NetworkService::new(Arc::new(network)));
        let mut serving = Vec::new();
        for (topic, handler) in [("network", network), ("conductor", Arc::new(Sink))] {
            let server = bus.serve(topic, None, handler).await;
            serving.push(server.map_err(fail("serve"))?);
        }
        let config = ComputeConfig {
            virt_type: VirtType::Qemu,
            ..ComputeConfig::default()
        };
        let worker = start(WorkerSetup {
            host: "bench".parse().map_err(fail("host"))?,
            state_dir: &state_dir,
            config: &config,
            vlan_interface: "eth0".into(),
            transport: Arc::new(bus.clone()),
            call_timeout: Duration::from_secs(30),
            host_commands: Some(Arc::new(RealHost::in_netns(netns))),
            driver: Some(Arc::new(driver)),
            metadata: None,
        })
        .await
        .map_err(fail("worker"))?;
        Ok(Self {
            worker,
            _serving: serving,
            _daemon: daemon,
        })
    }

    /// Spawns and terminates `runs` guests in turn; each build's timings.
    async fn spawn(&self, image: &ImageRef, runs: usize) -> Result<Vec<BuildTimings>, BenchError> {
        let ctx = RequestContext::system();
        let mut all = Vec::with_capacity(runs);
        for _ in 0..runs {
            let request = request("spawn", tiny_flavor(), image.clone())?;
            let manager = &self.worker.manager;
            let timings = manager.run_instance(&ctx, &request).await.ok_or_else(|| {
                BenchError::new("spawn", "the guest did not reach running (see the log)")
            })?;
            all.push(timings);
            manager.terminate_instance(&ctx, request.instance_id).await;
        }
        self.worker.periodic.cancel();
        Ok(all)
    }
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
        let overlay_path = dir.join(format!("bare-{run}.qcow2"));
        let pidfile = dir.join(format!("bare-{run}.pid"));
        overlay("spawn", &image.disk, &overlay_path)?;
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
            .arg(format!(
                "file={},if=virtio,format=qcow2",
                overlay_path.display()
            ))
            .arg("-serial")
            .arg(format!(
                "file:{}",
                dir.join(format!("bare-{run}.log")).display()
            ))
            .arg("-pidfile")
            .arg(&pidfile)
            .output()
            .map_err(fail("qemu-system-x86_64"))?;
        let took = started.elapsed();
        if !out.status.success() {
            return Err(BenchError::new(
                "spawn",
                format!("bare qemu: {}", String::from_utf8_lossy(&out.stderr)),
            ));
        }
        times.push(took);
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
    Ok(median(times))
}
