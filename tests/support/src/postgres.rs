//! A PostgreSQL server for the tests of one process: the one
//! `STRATUS_TEST_POSTGRES_URL` names, or else a private one started from
//! the installed PostgreSQL (`deploy/dev-setup` installs it) in a temp
//! folder on a free port, shared by the tests that overlap and stopped
//! when the last of their databases is dropped. A test that cannot get a
//! server fails: it never skips.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use crate::command::{output, run};

/// Names an existing server (its maintenance database, as a role that may
/// create databases) instead of starting a private one.
const URL_VAR: &str = "STRATUS_TEST_POSTGRES_URL";

/// The user a private server runs as (PostgreSQL refuses to run as root).
const SERVER_USER: &str = "postgres";

/// A server to create databases on.
pub(crate) struct Server {
    /// URL of the maintenance database, as a role that may create databases.
    admin: String,
    /// The private server's data, when this process started it.
    private: Option<Private>,
}

struct Private {
    dir: tempfile::TempDir,
}

impl Server {
    /// The server every overlapping test of this process shares.
    pub(crate) fn shared() -> Arc<Self> {
        static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(match std::env::var(URL_VAR) {
            Ok(admin) => Self {
                admin,
                private: None,
            },
            Err(_) => Self::start_private(),
        });
        *shared = Arc::downgrade(&server);
        server
    }

    /// URL of database `name` on this server.
    pub(crate) fn url(&self, name: &str) -> String {
        let base = self
            .admin
            .rsplit_once('/')
            .map_or(self.admin.as_str(), |(base, _)| base);
        format!("{base}/{name}")
    }

    /// Runs one SQL statement on the maintenance database; panics on failure.
    pub(crate) fn psql(&self, sql: &str) {
        if let Err(stderr) = self.try_psql(sql) {
            panic!("psql {sql}: {stderr}");
        }
    }

    /// Runs one SQL statement on the maintenance database; its stderr on failure.
    pub(crate) fn try_psql(&self, sql: &str) -> Result<(), String> {
        let out = output(
            Command::new("psql").args([&self.admin, "-v", "ON_ERROR_STOP=1", "-qc", sql]),
            "deploy/dev-setup installs PostgreSQL",
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn start_private() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("stratus-pg-")
            .tempdir()
            .expect("temp folder for PostgreSQL");
        if running_as_root() {
            run(
                Command::new("chown")
                    .arg(format!("{SERVER_USER}:{SERVER_USER}"))
                    .arg(dir.path()),
                "chown",
            );
        }
        let data = dir.path().join("data");
        run(
            as_server_user(&pg_bin("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            "deploy/dev-setup installs PostgreSQL",
        );
        // A port another process takes between choosing and binding is
        // refused at start: choose again.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = crate::ports::free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -F",
                dir.path().display()
            );
            let out = output(
                as_server_user(&pg_bin("pg_ctl"))
                    .args(["-w", "-t", "60", "-D"])
                    .arg(&data)
                    .arg("-l")
                    .arg(dir.path().join("log"))
                    .args(["-o", &options, "start"]),
                "deploy/dev-setup installs PostgreSQL",
            );
            if out.status.success() {
                return Self {
                    admin: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    private: Some(Private { dir }),
                };
            }
            last_error = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        }
        panic!("a private PostgreSQL did not start: {last_error}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(private) = &self.private {
            let _ = as_server_user(&pg_bin("pg_ctl"))
                .args(["-m", "immediate", "-D"])
                .arg(private.dir.path().join("data"))
                .arg("stop")
                .output();
        }
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program`, run as the server's user when this process is root.
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL server program: on `PATH`, else from the newest Debian
/// installation under /usr/lib/postgresql.
fn pg_bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|entry| entry.ok().map(|e| e.path().join("bin").join(name)))
                .filter(|candidate| candidate.is_file())
                .collect();
            versions.sort_by_key(|p| {
                p.components()
                    .nth(4)
                    .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
            });
            versions.pop()
        })
        .unwrap_or_else(|| PathBuf::from(name))
}
