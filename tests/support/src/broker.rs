//! RabbitMQ for tests: the shared broker (`STRATUS_TEST_AMQP_URL`, default
//! the local one `deploy/dev-setup` starts), a vhost of the test's own on
//! it, or a private node the test may stop and restart without touching
//! the one every other test shares.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use stratus_rpc::RpcConfig;

use crate::command::{output, run};

/// What provides RabbitMQ's tools, for panics when they are missing.
const INSTALLED_BY: &str = "deploy/dev-setup installs rabbitmq-server";

/// The shared broker's URL (its default vhost).
pub fn amqp_url() -> String {
    std::env::var("STRATUS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Talking to the shared broker on an exchange of the test's own (so
/// queues of the test's own), whose queues vanish `queue_expiry` after the
/// test stops using them.
pub fn rpc_config(exchange: String, queue_expiry: Duration) -> RpcConfig {
    RpcConfig {
        url: amqp_url(),
        exchange,
        queue_expiry_ms: Some(u64::try_from(queue_expiry.as_millis()).unwrap_or(u64::MAX)),
        ..RpcConfig::default()
    }
}

/// Runs `rabbitmqctl -q args` against the shared broker; panics on failure.
pub fn rabbitmqctl(args: &[&str]) {
    run(
        Command::new("rabbitmqctl").arg("-q").args(args),
        INSTALLED_BY,
    );
}

/// A vhost of the test's own on the shared broker (so closing "all
/// connections" closes only the test's), deleted on drop.
pub struct Vhost(String);

impl Vhost {
    /// Creates the vhost and lets `guest` use it.
    pub fn create() -> Self {
        let name = crate::names::unique("stratus-test");
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self(name)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `amqp://…` of this vhost on the shared broker.
    pub fn url(&self) -> String {
        let base = amqp_url();
        let root = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(root, _)| root);
        format!("{root}/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        // Panicking again while a failed test unwinds would abort the run.
        if std::thread::panicking() {
            let _ = Command::new("rabbitmqctl")
                .args(["-q", "delete_vhost", &self.0])
                .output();
        } else {
            rabbitmqctl(&["delete_vhost", &self.0]);
        }
    }
}

/// A private RabbitMQ node (its own port, node name and data folder);
/// stopped and its data removed on drop.
pub struct PrivateBroker {
    node: String,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateBroker {
    /// Starts the node and waits until it serves.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("plugins file");
        // The server runs as the rabbitmq user: its folders must be its own.
        run(
            Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq"])
                .arg(dir.path()),
            INSTALLED_BY,
        );
        let broker = Self {
            node: format!("{}@localhost", crate::names::unique("stratus")),
            // RabbitMQ derives its distribution port as port + 20000.
            port: crate::ports::free_port_with_companion(20_000),
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
        run(
            self.command("rabbitmq-server").arg("-detached"),
            INSTALLED_BY,
        );
        // The node registers with epmd a moment after the command returns.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = output(
                self.command("rabbitmqctl").args([
                    "-q",
                    "-n",
                    &self.node,
                    "await_startup",
                    "--timeout",
                    "30",
                ]),
                INSTALLED_BY,
            );
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
        run(
            self.command("rabbitmqctl")
                .args(["-q", "-n", &self.node, "stop"]),
            INSTALLED_BY,
        );
    }

    /// Kills the node as a crash would: its OS process and every process
    /// under it get SIGKILL, nothing is flushed or closed. (`epmd` is not
    /// its child, and other nodes share it: it stays.)
    pub fn kill(&self) {
        // The node is found by its pid file and by the node name in its
        // processes' environment: the pid file alone may still name the
        // node's previous run for a moment after a restart, and then the
        // node would survive.
        let pid_file = self.dir.path().join("pid");
        // epmd may carry it too (the first node started it) but serves
        // every node on the machine: it stays.
        let epmd: Vec<u32> = crate::process::command_lines()
            .into_iter()
            .filter(|(_, line)| line.contains("epmd"))
            .map(|(pid, _)| pid)
            .collect();
        let mut roots: Vec<u32> =
            crate::process::with_environment(&format!("RABBITMQ_NODENAME={}", self.node))
                .into_iter()
                .filter(|pid| !epmd.contains(pid))
                .collect();
        roots.extend(
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok()),
        );
        assert!(
            !roots.is_empty(),
            "broker {}: no process and no pid in {}",
            self.node,
            pid_file.display()
        );
        let mut doomed = roots.clone();
        for root in &roots {
            doomed.extend(crate::process::descendants(*root));
        }
        for pid in &doomed {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
        }
        // Dead, and its port closed: a kill that missed the node must not
        // pass for one.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let survivors: Vec<u32> = doomed
                .iter()
                .copied()
                .filter(|p| crate::process::alive(*p))
                .collect();
            let answers = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if survivors.is_empty() && !answers {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {}: after SIGKILL, still alive: {survivors:?}, port {} answers: {answers}",
                self.node,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
