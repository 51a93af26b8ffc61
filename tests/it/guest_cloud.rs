//! A cloud on real guests, as the end-to-end tests need it: every service a
//! process of its own over RabbitMQ, guest networking (bridges, dnsmasq,
//! the metadata service at 169.254.169.254) in a namespace of the test's
//! own — the "router" — with a libvirtd of its own, a client namespace
//! routed to the guests through the router (so through the firewall), and
//! the tiny guest image imported. The client namespace is also "the
//! outside" on the public side: a second link joins it to the router's
//! `[network] public_interface`, holding the public range's gateway, as the
//! host's end of the all-in-one's public link does. Everything it made goes
//! on `Drop`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratus::ec2_client::Client;
use stratus_compute::host::libvirtd::PrivateLibvirtd;
use stratus_test_support::broker;
use stratus_test_support::ports::free_ports;
use stratus_test_support::workspace::stratus_bin;
use stratus_test_support::{sh, short_id as short};

/// The client namespace's address on its link to the router.
pub const CLIENT_ADDRESS: &str = "10.250.0.2";

/// The client namespace's address on the public link: the gateway of the
/// default `[network] public_range` (172.24.4.0/24), the outside's router.
pub const PUBLIC_GATEWAY: &str = "172.24.4.1";

/// The default `[network] public_range`, which the services keep.
pub const PUBLIC_RANGE: &str = "172.24.4.0/24";

/// The router's end of the public link: the default
/// `[network] public_interface`, which the network controller binds mapped
/// addresses on.
const PUBLIC_INTERFACE: &str = "stratus-pub";

/// A project's EC2 keys.
pub struct Credentials {
    pub key: String,
    pub secret: String,
}

/// How a named process was started: its name, the service, extra settings.
type Spec = (String, String, Vec<(String, String)>);

/// Namespaces, daemons and processes of the test, removed however it ends.
pub struct GuestCloud {
    dir: tempfile::TempDir,
    netns: Vec<String>,
    children: Vec<(String, Child)>,
    /// How each named process was started, for [`Self::respawn`].
    specs: Vec<Spec>,
    libvirtd: Option<PrivateLibvirtd>,
    /// Daemons a worker started itself (shared mode): namespace and folder.
    worker_libvirtds: Vec<(String, PathBuf)>,
    env: Vec<(String, String)>,
    /// The namespace guest networking lives in.
    pub router: String,
    /// The namespace the test's SSH client runs in.
    pub client: String,
    /// The libvirt URI of compute-a.
    pub uri: String,
    /// The EC2 endpoint.
    pub endpoint: String,
    /// The tiny image.
    pub ami: String,
    /// Where the api's and compute-a's Prometheus metrics are served.
    pub api_metrics: u16,
    pub compute_metrics: u16,
}

impl Drop for GuestCloud {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.libvirtd.take());
        for (netns, dir) in &self.worker_libvirtds {
            PrivateLibvirtd::stop_at(netns, dir);
        }
        for ns in &self.netns {
            stratus_host::netns::remove(ns);
        }
    }
}

impl GuestCloud {
    /// Starts the cloud with one compute host (`compute-a`) and an account
    /// for each of `projects` (user `alice`) on the shared broker; waits
    /// until it serves. Namespaces are named `st-<prefix>-<tag>`.
    pub async fn start(prefix: &str, projects: &[&str]) -> (Self, Vec<Credentials>) {
        Self::start_on(prefix, projects, &broker::amqp_url()).await
    }

    /// [`Self::start`] with the services on the broker at `amqp_url`.
    pub async fn start_on(
        prefix: &str,
        projects: &[&str],
        amqp_url: &str,
    ) -> (Self, Vec<Credentials>) {
        Self::start_with(prefix, projects, amqp_url, &[]).await
    }

    /// [`Self::start`] with `settings` (`STRATUS_*` variables) given to
    /// every service and operator command as well.
    pub async fn start_with_settings(
        prefix: &str,
        projects: &[&str],
        settings: &[(&str, &str)],
    ) -> (Self, Vec<Credentials>) {
        Self::start_with(prefix, projects, &broker::amqp_url(), settings).await
    }

    async fn start_with(
        prefix: &str,
        projects: &[&str],
        amqp_url: &str,
        settings: &[(&str, &str)],
    ) -> (Self, Vec<Credentials>) {
        let tag = short();
        let router = format!("st-{prefix}-{tag}");
        let client = format!("st-cl-{tag}");
        let mut cloud = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            netns: vec![router.clone(), client.clone()],
            children: vec![],
            specs: vec![],
            libvirtd: None,
            worker_libvirtds: vec![],
            env: vec![],
            router: router.clone(),
            client: client.clone(),
            uri: String::new(),
            endpoint: String::new(),
            ami: String::new(),
            api_metrics: 0,
            compute_metrics: 0,
        };
        stratus_host::netns::prepare(&router)
            .await
            .expect("namespace");
        cloud.connect_client();
        let libvirtd = PrivateLibvirtd::start(&router, &cloud.state("libvirt"))
            .expect("libvirtd in the namespace");
        cloud.uri = libvirtd.uri().to_owned();
        cloud.libvirtd = Some(libvirtd);
        cloud.ami = cloud.import_image();
        let api_state = cloud.state("api");
        let credentials: Vec<Credentials> = projects
            .iter()
            .map(|project| cloud.credentials(project, &api_state))
            .collect();
        cloud.start_services(amqp_url, settings).await;
        (cloud, credentials)
    }

    /// The client reaches the guests' network through the router, and the
    /// router's public interface as the outside does.
    fn connect_client(&self) {
        let (router, client) = (&self.router, &self.client);
        sh("ip", &["netns", "add", client]);
        sh(
            "ip",
            &[
                "link", "add", "e2e-r", "netns", router, "type", "veth", "peer", "name", "eth0",
                "netns", client,
            ],
        );
        let client_cidr = format!("{CLIENT_ADDRESS}/30");
        for (ns, dev, addr) in [
            (router, "e2e-r", "10.250.0.1/30"),
            (client, "eth0", client_cidr.as_str()),
        ] {
            sh("ip", &["-n", ns, "addr", "add", addr, "dev", dev]);
            sh("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        sh("ip", &["-n", client, "link", "set", "lo", "up"]);
        sh(
            "ip",
            &["-n", client, "route", "add", "default", "via", "10.250.0.1"],
        );
        // The public link. The router's end has no address of its own: the
        // network controller binds each mapped public address on it (/32)
        // and routes the range on-link there, as on a real network host.
        sh(
            "ip",
            &[
                "link",
                "add",
                PUBLIC_INTERFACE,
                "netns",
                router,
                "type",
                "veth",
                "peer",
                "name",
                "pub0",
                "netns",
                client,
            ],
        );
        let gateway_cidr = format!("{PUBLIC_GATEWAY}/24");
        sh(
            "ip",
            &["-n", client, "addr", "add", &gateway_cidr, "dev", "pub0"],
        );
        sh("ip", &["-n", client, "link", "set", "pub0", "up"]);
        sh("ip", &["-n", router, "link", "set", PUBLIC_INTERFACE, "up"]);
    }

    /// `program args…` run in the client namespace (the outside).
    pub fn in_client(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.client, program])
            .args(args);
        command
    }

    /// Builds the tiny image and imports it; its id.
    fn import_image(&self) -> String {
        let image_dir = self.state("image");
        sh(
            &stratus_test_support::workspace::root()
                .join("deploy/images/build-tiny-image")
                .display()
                .to_string(),
            &[&image_dir.display().to_string()],
        );
        let path = |n: &str| image_dir.join(n).display().to_string();
        let imported = self.cli(
            &[
                "image",
                "import",
                &path("disk.qcow2"),
                "--kernel",
                &path("kernel"),
                "--ramdisk",
                &path("ramdisk"),
                "--name",
                "tiny",
            ],
            &self.state("api"),
        );
        imported
            .split_whitespace()
            .next()
            .expect("an image id")
            .to_owned()
    }

    fn credentials(&self, project: &str, api_state: &Path) -> Credentials {
        let creds = self.cli(
            &[
                "credentials",
                "create",
                "--project",
                project,
                "--user",
                "alice",
            ],
            api_state,
        );
        let field = |name: &str| {
            creds
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                .expect("a key")
                .to_owned()
        };
        Credentials {
            key: field("aws_access_key_id"),
            secret: field("aws_secret_access_key"),
        }
    }

    /// api, scheduler, network and compute-a, each a process over RabbitMQ.
    async fn start_services(&mut self, amqp_url: &str, settings: &[(&str, &str)]) {
        let [port, api_metrics, compute_metrics] = free_ports::<3>();
        (self.api_metrics, self.compute_metrics) = (api_metrics, compute_metrics);
        let tag = self.router.rsplit('-').next().unwrap_or("x").to_owned();
        self.env = vec![
            ("STRATUS_RPC__URL".into(), amqp_url.to_owned()),
            ("STRATUS_RPC__EXCHANGE".into(), format!("stratus-e2e-{tag}")),
            ("STRATUS_RPC__QUEUE_EXPIRY_MS".into(), "120000".into()),
            ("STRATUS_LOG__FILTER".into(), "info,lapin=off".into()),
            ("STRATUS_COMPUTE__REPORT_INTERVAL_SECS".into(), "1".into()),
            ("STRATUS_COMPUTE__VIRT_TYPE".into(), "qemu".into()),
            ("STRATUS_SCHEDULER__DRIVER".into(), "chance".into()),
        ];
        self.env.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let router = self.router.clone();
        let control = || ("STRATUS_NODE__HOST", "control".to_owned());
        let state_of = |name: &str| {
            (
                "STRATUS_NODE__STATE_DIR",
                self.state(name).display().to_string(),
            )
        };
        let api = [
            state_of("api"),
            control(),
            ("STRATUS_API__LISTEN", format!("127.0.0.1:{port}")),
            ("STRATUS_API__METADATA_NETNS", router.clone()),
            ("STRATUS_API__METADATA_LISTEN", "169.254.169.254:80".into()),
            (
                "STRATUS_METRICS__LISTEN",
                format!("127.0.0.1:{}", self.api_metrics),
            ),
        ];
        let network = [
            state_of("network"),
            control(),
            ("STRATUS_NODE__NETNS", router.clone()),
        ];
        let compute = [
            state_of("compute-a"),
            ("STRATUS_NODE__HOST", "compute-a".into()),
            ("STRATUS_NODE__NETNS", router.clone()),
            ("STRATUS_COMPUTE__LIBVIRT_URI", self.uri.clone()),
            (
                "STRATUS_METRICS__LISTEN",
                format!("127.0.0.1:{}", self.compute_metrics),
            ),
        ];
        self.spawn("api", "api", &api);
        self.spawn("scheduler", "scheduler", &[control()]);
        self.spawn("network", "network", &network);
        self.spawn("compute-a", "compute", &compute);
        self.endpoint = format!("http://127.0.0.1:{port}/");
        // Ready when the api answers and the scheduler lists compute-a up.
        let probe = Client::new(&self.endpoint, "nova", "none", "none");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Any answer, even "unknown key", means the api serves.
            let answers = !matches!(
                probe.action("DescribeAvailabilityZones", &[]).await,
                Err(stratus::ec2_client::Ec2ClientError::Transport(_))
            );
            let listed = self.service_list();
            if answers && Self::host_up(&listed, "compute-a") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cloud did not come up:\n{listed}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Removes `netns` (and stops the libvirtd a worker started in it, from
    /// `libvirt_dir`) with the rest of the cloud.
    pub fn own(&mut self, netns: &str, libvirt_dir: Option<PathBuf>) {
        self.netns.push(netns.to_owned());
        if let Some(dir) = libvirt_dir {
            self.worker_libvirtds.push((netns.to_owned(), dir));
        }
    }

    /// Starts `stratus <service>` with the shared settings and `extra`.
    pub fn spawn(&mut self, name: &str, service: &str, extra: &[(&str, String)]) {
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.specs
            .push((name.to_owned(), service.to_owned(), extra.clone()));
        self.start_process(name, service, &extra);
    }

    /// Kills the process `name` with SIGKILL (no handler, no clean-up, as
    /// a crash) and reaps it; false when none of that name runs.
    #[allow(dead_code)] // the chaos binary's, which shares this file
    pub fn kill(&mut self, name: &str) -> bool {
        let Some(at) = self.children.iter().position(|(n, _)| n == name) else {
            return false;
        };
        let (_, mut child) = self.children.remove(at);
        // Child::kill is SIGKILL on Unix.
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    /// Starts `name` again as [`Self::spawn`] first started it; its log
    /// goes on in the same file.
    #[allow(dead_code)] // the chaos binary's, which shares this file
    pub fn respawn(&mut self, name: &str) {
        let (_, service, extra) = self
            .specs
            .iter()
            .find(|(n, _, _)| n == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} was never spawned"));
        self.start_process(name, &service, &extra);
    }

    fn start_process(&mut self, name: &str, service: &str, extra: &[(String, String)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log file");
        let mut command = self.stratus(&[service]);
        command.stdout(Stdio::null()).stderr(log);
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("start a service");
        self.children.push((name.to_owned(), child));
    }

    /// `stratus <args>` with the cloud's settings.
    pub fn stratus(&self, args: &[&str]) -> Command {
        let mut command = Command::new(stratus_bin());
        command.args(args);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// An operator command on the state folder `state`, which must succeed.
    pub fn cli(&self, args: &[&str], state: &Path) -> String {
        let out = Command::new(stratus_bin())
            .args(args)
            .env("STRATUS_NODE__STATE_DIR", state)
            .env("STRATUS_LOG__FILTER", "warn")
            .output()
            .expect("stratus runs");
        assert!(
            out.status.success(),
            "stratus {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What `stratus service list` prints now (empty when it fails).
    pub fn service_list(&self) -> String {
        self.stratus(&["service", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Whether `service list` shows compute host `host` up.
    pub fn host_up(listed: &str, host: &str) -> bool {
        listed
            .lines()
            .any(|l| l.starts_with("compute") && l.contains(host) && l.contains(" up "))
    }

    /// The last lines of every service's log.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (name, _, _) in &self.specs {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            all.push_str(&format!(
                "--- {name}\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        all
    }

    /// The whole log of the process `name` so far (empty if none).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// A folder of the test's own, `name` under its temp folder.
    pub fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
