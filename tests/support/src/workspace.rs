use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> &'static Path {
    // This crate sits at tests/support.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `stratus` binary, built (or found fresh) once per test run, so tests
/// never run a stale binary.
pub fn stratus_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bin", "stratus"])
            .current_dir(root())
            .status()
            .expect("running cargo build for the stratus binary");
        assert!(status.success(), "cargo build --bin stratus failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from);
        target.join("debug").join("stratus")
    })
}
