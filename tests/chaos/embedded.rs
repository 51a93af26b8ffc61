//! The embedded mode as a new user runs it: `stratus all-in-one --no-demo`
//! as one process with its own state folder, namespace and libvirtd (which
//! it starts and which outlives it, as a host's would). A kill is SIGKILL
//! of that process; the restart is the same command again.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratus_test_support::workspace::{root, stratus_bin};
use stratus_test_support::{free_port, sh, short_id};

use crate::site::{Site, View};

/// The all-in-one process, its folder and namespace; all removed on drop.
pub struct Embedded {
    child: Option<Child>,
    view: View,
    netns: String,
    port: u16,
    state: tempfile::TempDir,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.kill("all-in-one");
        stratus_compute::host::libvirtd::PrivateLibvirtd::stop_at(
            &self.netns,
            &self.state.path().join("libvirt"),
        );
        stratus_host::netns::remove(&self.netns);
    }
}

impl Embedded {
    /// Builds and imports the tiny image, makes an account, starts the
    /// all-in-one and waits until its API answers.
    pub async fn start() -> Self {
        let state = tempfile::tempdir().expect("tempdir");
        // QEMU runs as its own user: it must reach the image and instance folders.
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let dir = state.path().to_owned();
        let image = dir.join("image");
        sh(
            &root()
                .join("deploy/images/build-tiny-image")
                .display()
                .to_string(),
            &[&image.display().to_string()],
        );
        let file = |n: &str| image.join(n).display().to_string();
        let imported = cli(
            &dir,
            &[
                "image",
                "import",
                &file("disk.qcow2"),
                "--kernel",
                &file("kernel"),
                "--ramdisk",
                &file("ramdisk"),
                "--name",
                "tiny",
            ],
        );
        let creds = cli(
            &dir,
            &[
                "credentials",
                "create",
                "--project",
                "chaos",
                "--user",
                "alice",
            ],
        );
        let field = |name: &str| {
            creds
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                .expect("a key")
                .to_owned()
        };
        let port = free_port();
        let netns = format!("st-cha-{}", short_id());
        let work = dir.join("chaos");
        std::fs::create_dir_all(&work).expect("work folder");
        let view = View {
            endpoint: format!("http://127.0.0.1:{port}/"),
            key: field("aws_access_key_id"),
            secret: field("aws_secret_access_key"),
            ami: imported
                .split_whitespace()
                .next()
                .expect("an image id")
                .to_owned(),
            netns: netns.clone(),
            libvirt_dir: dir.join("libvirt"),
            compute_state: dir.clone(),
            network_state: dir.clone(),
            work,
        };
        let mut embedded = Self {
            child: None,
            view,
            netns,
            port,
            state,
        };
        embedded.restart("all-in-one");
        embedded.wait_serving().await;
        embedded
    }

    async fn wait_serving(&self) {
        let client = self.view.client();
        let deadline = Instant::now() + Duration::from_secs(180);
        while let Err(stratus::ec2_client::Ec2ClientError::Transport(_)) =
            client.action("DescribeAvailabilityZones", &[]).await
        {
            assert!(
                Instant::now() < deadline,
                "the all-in-one did not come up: see {}",
                self.log_path().display()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.state.path().join("all-in-one.log")
    }
}

impl Site for Embedded {
    fn mode(&self) -> &'static str {
        "embedded"
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn victims(&self) -> &'static [&'static str] {
        &["all-in-one"]
    }

    fn kill(&mut self, _victim: &str) {
        if let Some(mut child) = self.child.take() {
            // Child::kill is SIGKILL on Unix: no handler, no clean-up.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self, _victim: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let dir = self.state.path();
        let child = Command::new(stratus_bin())
            // -v: the services' lines on stderr, this harness's log file.
            .args(["all-in-one", "--no-demo", "-v"])
            .env("STRATUS_NODE__STATE_DIR", dir)
            // No public link: its host end would hold a range's gateway in
            // the host's own namespace, shared with whatever else runs here.
            .env("STRATUS_NETWORK__PUBLIC_RANGE", "")
            .env("STRATUS_NODE__NETNS", &self.netns)
            .env("STRATUS_NODE__HOST", "aio")
            .env("STRATUS_API__LISTEN", format!("127.0.0.1:{}", self.port))
            .env("STRATUS_COMPUTE__VIRT_TYPE", "qemu")
            .env("STRATUS_LOG__FILTER", "info")
            .env("HOME", dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the all-in-one");
        self.child = Some(child);
    }

    fn log_files(&self) -> Vec<(String, std::path::PathBuf)> {
        vec![("all-in-one".to_owned(), self.log_path())]
    }
}

/// `stratus <args>` on the state folder `dir`, which must succeed; its output.
fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(stratus_bin())
        .args(args)
        .env("STRATUS_NODE__STATE_DIR", dir)
        .env("STRATUS_LOG__FILTER", "warn")
        .output()
        .expect("stratus runs");
    assert!(
        out.status.success(),
        "stratus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
