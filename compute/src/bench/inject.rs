//! `stratus bench inject`: the time to inject a key into one disk by each
//! path this host has, and to build a config drive.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use stratus_rpc::wire::compute::{Flavor, ImageRef, RunInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::FixedIp;

use crate::inject::expose::ExposeMethod;
use crate::inject::inject_key;

/// A benchmark step failed.
#[derive(Debug, thiserror::Error)]
#[error("bench inject: {0}")]
pub struct BenchError(String);

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPe/aujvKiZYchfWfAw/nYLlpeMoYnIIPaEQUG84tEtE bench@stratus";

fn overlay(base: &Path, top: &Path) -> Result<(), BenchError> {
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(top)
        .status()
        .map_err(|e| BenchError(format!("qemu-img: {e}")))?;
    if ok.success() {
        Ok(())
    } else {
        Err(BenchError("qemu-img create failed".into()))
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Injects `runs` times per path on fresh overlays of the test image.
pub async fn run(builder: &Path, runs: usize) -> Result<(), BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "stratus-bench-inject-{}",
        InstanceId::new().0.simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError(e.to_string()))?;
    let built = Command::new(builder)
        .arg(&dir)
        .output()
        .map_err(|e| BenchError(format!("{}: {e}", builder.display())))?;
    if !built.status.success() {
        return Err(BenchError(
            String::from_utf8_lossy(&built.stderr).into_owned(),
        ));
    }
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
        let mut times = Vec::new();
        for i in 0..runs.max(1) {
            let top = dir.join(format!("top-{i}.qcow2"));
            overlay(&base, &top)?;
            let started = Instant::now();
            inject_key(
                &crate::host::local(),
                &top,
                &dir.join(format!("work-{i}")),
                KEY,
                method,
            )
            .await
            .map_err(|e| BenchError(format!("{name}: {e}")))?;
            times.push(started.elapsed());
        }
        println!("  {name:<46} {:>8.1} ms", median(times).as_secs_f64() * 1e3);
    }
    let request = RunInstance {
        instance_id: InstanceId::new(),
        project_id: "bench".parse().map_err(|e| BenchError(format!("{e}")))?,
        flavor: Flavor {
            name: "m1.tiny".into(),
            vcpus: 1,
            memory_mb: 256,
            root_gb: 0,
        },
        image: ImageRef {
            id: "ami-be4c000000000002".into(),
            disk: base.clone(),
            kernel: None,
            ramdisk: None,
            properties: Default::default(),
        },
        security_groups: vec![],
        key_data: Some(KEY.into()),
        key_name: Some("bench".into()),
        user_data: None,
        reservation_id: None,
        placement: Default::default(),
    };
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
        crate::config_drive::build(&crate::host::local(), &dir, &request, &fixed, "nova")
            .await
            .map_err(|e| BenchError(e.to_string()))?;
        times.push(started.elapsed());
    }
    println!(
        "  {:<46} {:>8.1} ms",
        "config drive (genisoimage)",
        median(times).as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
