use std::path::Path;
use std::process::Command;

use crate::command::run;

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
