//! What the benches that build guests share: the request for one instance,
//! the test image, qcow2 overlays on it, and a scratch network namespace.

use std::path::Path;
use std::process::Command;

use stratus_rpc::wire::compute::{Flavor, ImageRef, RunInstance};

use super::BenchError;

/// The `ssh` options for reaching a test guest unattended: every guest is
/// new, so its host key is neither checked nor kept; no prompt; only
/// errors printed; a short connect so a retry loop sees a guest come up.
pub const SSH_OPTIONS: &[&str] = &[
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
];

/// A 1-vCPU, 256 MiB flavor without a root disk size.
pub fn tiny_flavor() -> Flavor {
    Flavor {
        name: "m1.tiny".into(),
        vcpus: 1,
        memory_mb: 256,
        root_gb: 0,
    }
}

/// An image of `disk` alone, no kernel or ramdisk.
pub fn disk_image(id: &str, disk: &Path) -> ImageRef {
    ImageRef {
        id: id.into(),
        disk: disk.to_path_buf(),
        kernel: None,
        ramdisk: None,
        properties: Default::default(),
    }
}

/// A request for a new instance of project `bench`: no key, no groups, no
/// placement.
pub fn request(
    bench: &'static str,
    flavor: Flavor,
    image: ImageRef,
) -> Result<RunInstance, BenchError> {
    let project = "bench"
        .parse()
        .map_err(BenchError::step(bench, "project"))?;
    Ok(RunInstance::new(project, flavor, image))
}

/// Runs the image `builder`, which writes `disk.qcow2` (and `kernel`,
/// `ramdisk`) into `dir`.
pub fn build_image(bench: &'static str, builder: &Path, dir: &Path) -> Result<(), BenchError> {
    let built = Command::new(builder)
        .arg(dir)
        .output()
        .map_err(BenchError::step(bench, format!("{}", builder.display())))?;
    if built.status.success() {
        Ok(())
    } else {
        Err(BenchError::new(
            bench,
            format!(
                "{}: {}",
                builder.display(),
                String::from_utf8_lossy(&built.stderr)
            ),
        ))
    }
}

/// Creates the qcow2 overlay `top` on `base`.
pub fn overlay(bench: &'static str, base: &Path, top: &Path) -> Result<(), BenchError> {
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(top)
        .status()
        .map_err(BenchError::step(bench, "qemu-img"))?;
    if made.success() {
        Ok(())
    } else {
        Err(BenchError::new(bench, "qemu-img create failed"))
    }
}

/// A network namespace of the run's own, removed however the run ends.
pub struct ScratchNetns(String);

impl ScratchNetns {
    /// Adds the namespace `name` (which needs root).
    pub fn add(bench: &'static str, name: String) -> Result<Self, BenchError> {
        let added = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map_err(BenchError::step(bench, "ip netns add"))?;
        if added.success() {
            Ok(Self(name))
        } else {
            Err(BenchError::new(
                bench,
                "creating a network namespace needs root",
            ))
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
