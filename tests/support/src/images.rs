use std::path::Path;
use std::process::Command;

use crate::command::{run, run_or};

/// An empty qcow2 disk of `size` (`64M`, …) at `path`.
pub fn qcow2(path: &Path, size: &str) {
    run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg(size),
        "deploy/dev-setup installs qemu-utils",
    );
}

/// A qcow2 overlay at `top` over the qcow2 `base`.
pub fn qcow2_overlay(base: &Path, top: &Path) {
    run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(base)
            .arg(top),
        "deploy/dev-setup installs qemu-utils",
    );
}

/// Builds the tiny guest image into `dir` with deploy/images/build-test-image
/// (a kernel, a ramdisk and disk.qcow2).
pub fn build_test_image(dir: &Path) {
    run_or(
        Command::new(crate::workspace::root().join("deploy/images/build-test-image")).arg(dir),
        "deploy/images/build-test-image",
        "build-test-image",
    );
}
