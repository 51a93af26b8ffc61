//! Cross-crate integration and end-to-end tests live in `it/`; this library
//! holds what they share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
}

/// The `stratus` binary, built (or found fresh) once per test run, so tests
/// never run a stale binary.
pub fn stratus_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bin", "stratus"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build for the stratus binary");
        assert!(status.success(), "cargo build --bin stratus failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        target.join("debug").join("stratus")
    })
}
