//! Cross-crate integration and end-to-end tests live in `it/`; this library
//! holds what they share.

pub mod broker;

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

/// An empty qcow2 disk of `size` (`64M`, …) at `path`.
pub fn qcow2(path: &Path, size: &str) {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .output()
        .expect("qemu-img (deploy/dev-setup installs qemu-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL database of the test's own on the server `deploy/dev-setup`
/// starts (role `stratus`), dropped when this is.
pub struct PostgresDb {
    admin: String,
    name: String,
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql runs (deploy/dev-setup installs PostgreSQL)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PostgresDb {
    /// Creates the database.
    pub fn create() -> Self {
        let admin = std::env::var("STRATUS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://stratus:stratus@127.0.0.1:5432/postgres".to_owned());
        let name = format!("stratus_it_{}", uuid::Uuid::new_v4().simple());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        Self { admin, name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        let base = self
            .admin
            .rsplit_once('/')
            .map_or(self.admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
