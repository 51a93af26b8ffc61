//! `stratus bench inject`: the time to inject a key into one disk by each
//! path this host has, and to build a config drive.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::FixedIp;

use stratus_compute::inject::expose::ExposeMethod;
use stratus_compute::inject::inject_key;

use super::BenchError;
use super::guest::{build_image, disk_image, overlay, request, tiny_flavor};
use super::stats::{median, ms};

/// Sizes of `stratus bench inject`.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Injections per path (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// The image builder (run from a checkout, the default finds it).
    #[arg(long, default_value = "deploy/images/build-test-image")]
    pub builder: std::path::PathBuf,
}

super::error::bench_steps!("inject");

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPe/aujvKiZYchfWfAw/nYLlpeMoYnIIPaEQUG84tEtE bench@stratus";

/// Injects `runs` times per path on fresh overlays of the test image.
pub async fn run(options: &Options) -> Result<(), BenchError> {
    let (builder, runs) = (options.builder.as_path(), options.runs);
    let dir = std::env::temp_dir().join(format!(
        "stratus-bench-inject-{}",
        InstanceId::new().0.simple()
    ));
    std::fs::create_dir_all(&dir).map_err(fail("scratch folder"))?;
    build_image("inject", builder, &dir)?;
    let base = dir.join("disk.qcow2");
    println!("key injection into one 64 MiB ext4 qcow2 overlay, median of {runs}:");
    for (name, method) in [
        (
            "userspace (qemu-storage-daemon FUSE + loop)",
            ExposeMethod::Userspace,
        ),
        ("kernel (qemu-nbd -c /dev/nbdN)", ExposeMethod::Kernel),
    ] {
        if method == ExposeMethod::Kernel && !Path::new("/sys/module/nbd").exists() {
            println!("  {name:<46} not available here (no nbd kernel module)");
            continue;
        }
        let took = key_injection(&dir, &base, (name, method), runs).await?;
        println!("  {name:<46} {:>8.1} ms", ms(took));
    }
    let took = config_drive(&dir, &base, runs).await?;
    println!(
        "  {:<46} {:>8.1} ms",
        "config drive (genisoimage)",
        ms(took)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The median of `runs` injections by the named `method`, each on a fresh
/// overlay.
async fn key_injection(
    dir: &Path,
    base: &Path,
    (name, method): (&str, ExposeMethod),
    runs: usize,
) -> Result<Duration, BenchError> {
    let mut times = Vec::new();
    for i in 0..runs.max(1) {
        let top = dir.join(format!("top-{i}.qcow2"));
        overlay("inject", base, &top)?;
        let started = Instant::now();
        inject_key(
            &stratus_compute::host::local(),
            &top,
            &dir.join(format!("work-{i}")),
            KEY,
            method,
        )
        .await
        .map_err(fail(name))?;
        times.push(started.elapsed());
    }
    Ok(median(times))
}

/// The median of `runs` config drive builds for a keyed tiny instance.
async fn config_drive(dir: &Path, base: &Path, runs: usize) -> Result<Duration, BenchError> {
    let mut request = request(
        "inject",
        tiny_flavor(),
        disk_image("ami-be4c000000000002", base),
    )?;
    request.key_data = Some(KEY.into());
    request.key_name = Some("bench".into());
    let fixed = FixedIp {
        address: "10.0.0.3".into(),
        cidr: "10.0.0.0/24".into(),
        gateway: "10.0.0.1".into(),
        netmask: "255.255.255.0".into(),
        bridge: "br100".into(),
        dhcp_server: "10.0.0.2".into(),
        vlan: None,
        dns: vec![],
    };
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        stratus_compute::config_drive::build(
            &stratus_compute::host::local(),
            dir,
            &request,
            &fixed,
            "nova",
        )
        .await
        .map_err(fail("config drive"))?;
        times.push(started.elapsed());
    }
    Ok(median(times))
}
