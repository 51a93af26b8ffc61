//! A RabbitMQ node of the test's own (its own port, node name and data
//! folder), so a test may stop and restart its broker without touching the
//! one every other test shares.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private RabbitMQ node; stopped and its data removed on drop.
pub struct PrivateBroker {
    node: String,
    port: u16,
    dir: tempfile::TempDir,
}

/// A loopback port free now, whose distribution port (port + 20000, as
/// RabbitMQ derives it) is free too.
fn free_ports() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        drop(listener);
        if port > 40_000 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 20_000)).is_ok() {
            return port;
        }
    }
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .expect("rabbitmq tools run (deploy/dev-setup installs rabbitmq-server)")
}

impl PrivateBroker {
    /// Starts the node and waits until it serves.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("plugins file");
        // The server runs as the rabbitmq user: its folders must be its own.
        let out = run(Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path()));
        assert!(
            out.status.success(),
            "chown: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let broker = Self {
            node: format!(
                "stratus-{}@localhost",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            port: free_ports(),
            dir,
        };
        broker.boot();
        broker
    }

    /// `amqp://…` of the node's default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let base: &Path = self.dir.path();
        command
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", (self.port + 20_000).to_string())
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_PID_FILE", base.join("pid"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                base.join("enabled_plugins"),
            );
        command
    }

    fn boot(&self) {
        let out = run(self.command("rabbitmq-server").arg("-detached"));
        assert!(
            out.status.success(),
            "rabbitmq-server -detached: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The node registers with epmd a moment after the command returns.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = run(self.command("rabbitmqctl").args([
                "-q",
                "-n",
                &self.node,
                "await_startup",
                "--timeout",
                "30",
            ]));
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {} did not start: {}",
                self.node,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the node (every connection drops); its durable queues and
    /// persistent messages stay on disk for [`Self::restart`].
    pub fn stop(&self) {
        let out = run(self
            .command("rabbitmqctl")
            .args(["-q", "-n", &self.node, "stop"]));
        assert!(
            out.status.success(),
            "rabbitmqctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the stopped node again over the same data.
    pub fn restart(&self) {
        self.boot();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self
            .command("rabbitmqctl")
            .args(["-q", "-n", &self.node, "stop"])
            .output();
    }
}
