//! What the tests own and clean up: databases and network namespaces.

use std::process::Command;

use stratus_network::ipam::store::Store;

/// A database of the test's own: a SQLite file in a temp dir, or a fresh
/// PostgreSQL database dropped when the test ends.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    /// Needs the PostgreSQL that `deploy/dev-setup` starts (role `stratus`).
    pub fn postgres() -> Self {
        let admin = std::env::var("STRATUS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://stratus:stratus@127.0.0.1:5432/postgres".to_owned());
        let name = format!("stratus_test_{}", uuid::Uuid::new_v4().simple());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        Self::Postgres { admin, name }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("network.sqlite").display()
            ),
            Self::Postgres { admin, name } => {
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url())
            .await
            .expect("connect the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { admin, name } = self {
            psql(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql runs (deploy/dev-setup installs PostgreSQL)");
    assert!(
        out.status.success(),
        "psql {sql}: {} (deploy/dev-setup starts PostgreSQL)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of the test's own, deleted (with its processes) on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "st-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        sh("ip", &["netns", "add", &name]);
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }

    /// Runs a command inside the namespace; panics with stderr on failure.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let mut argv = vec!["netns", "exec", self.0.as_str(), program];
        argv.extend_from_slice(args);
        sh("ip", &argv)
    }

    /// Runs a command inside the namespace; returns whether it succeeded and its output.
    pub fn try_run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let mut argv = vec!["netns", "exec", self.0.as_str(), program];
        argv.extend_from_slice(args);
        let out = Command::new("ip").args(&argv).output().expect("ip runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A TCP listener on `address:port` in this namespace that accepts and
    /// closes, stopped on drop. (Not `python3 -m http.server`: it looks its
    /// address up in DNS when it starts, which waits out the resolver's
    /// timeout in a namespace with no DNS.)
    pub fn listen_tcp(&self, address: &str, port: u16) -> Served {
        let script = format!(
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{address}', {port}))\n\
             s.listen(64)\n\
             while True:\n\
             \x20   s.accept()[0].close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.0, "python3", "-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a TCP listener in the namespace");
        Served(child)
    }

    /// The MAC of `device` in this namespace.
    pub fn mac(&self, device: &str) -> String {
        self.run("cat", &[&format!("/sys/class/net/{device}/address")])
            .trim()
            .to_owned()
    }
}

/// A process the test started, killed when dropped.
pub struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs a host command; panics with its stderr on failure.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
