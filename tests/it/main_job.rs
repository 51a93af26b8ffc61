//! The README's main job: `stratus all-in-one` on real libvirt (TCG) builds
//! and registers the tiny image, boots a guest in its own network namespace,
//! prints an ssh command to the guest's public address — which must work
//! from the host's own shell while it keeps serving — with only its own
//! lines on the terminal and the services' in its log file, and stops on
//! Ctrl-C.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratus_test_support::workspace::stratus_bin;
use stratus_test_support::{command, free_port};

/// What the all-in-one leaves running on purpose (its libvirtd and guests,
/// its namespace), removed when the test ends however it ends.
struct Leftovers {
    netns: String,
    state: tempfile::TempDir,
    child: Option<Child>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        stratus_compute::host::libvirtd::PrivateLibvirtd::stop_at(
            &self.netns,
            &self.state.path().join("libvirt"),
        );
        stratus_host::netns::remove(&self.netns);
    }
}

/// The third octet of a public range `172.24.<n>.0/24` for this test's
/// all-in-one that nothing on the host routes yet: its link's host end
/// lives in the root namespace, shared by tests running in parallel (and by
/// a real all-in-one on 172.24.4.0/24).
fn unused_public_range() -> u8 {
    for _ in 0..64 {
        let n = 100 + uuid::Uuid::new_v4().as_bytes()[0] % 150;
        let routes = command::stdout_of(
            Command::new("ip")
                .args(["-4", "route", "show", "table", "all", "to", "root"])
                .arg(format!("172.24.{n}.0/24")),
            "ip route",
        );
        if routes.trim().is_empty() {
            return n;
        }
    }
    panic!("no free public range among 172.24.100-249.0/24");
}

#[test]
fn all_in_one_boots_a_guest_and_prints_an_ssh_command_that_works() {
    let state = tempfile::tempdir().expect("tempdir");
    let netns = format!("st-aio-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let range = unused_public_range();
    let public_range = format!("172.24.{range}.0/24");
    let child = Command::new(stratus_bin())
        .arg("all-in-one")
        .current_dir(stratus_test_support::workspace::root())
        .env("STRATUS_NODE__STATE_DIR", state.path())
        .env("STRATUS_NODE__NETNS", &netns)
        .env("STRATUS_NODE__HOST", "aio")
        .env("STRATUS_API__LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("STRATUS_NETWORK__PUBLIC_RANGE", &public_range)
        .env("HOME", state.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(state.path().join("stderr.log")).expect("log file"))
        .spawn()
        .expect("start all-in-one");
    let mut left = Leftovers {
        netns,
        state,
        child: Some(child),
    };
    let stdout = left
        .child
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("stdout");
    let got = command::lines(stdout);
    let deadline = Instant::now() + Duration::from_secs(420);
    let mut seen = Vec::new();
    let ssh = loop {
        let left_time = deadline.saturating_duration_since(Instant::now());
        let line = got.recv_timeout(left_time).unwrap_or_else(|_| {
            panic!(
                "no ssh command within 7 minutes; output:\n{}",
                seen.join("\n")
            )
        });
        assert!(
            !line.contains("did not come up"),
            "{}\n{line}",
            seen.join("\n")
        );
        if line.trim_start().starts_with("ssh ") {
            break line.trim().to_owned();
        }
        seen.push(line);
    };
    // Straight to the public address, from the host: no `ip netns exec`.
    let public: std::net::Ipv4Addr = ssh
        .rsplit_once("root@")
        .and_then(|(_, a)| a.parse().ok())
        .unwrap_or_else(|| panic!("no root@<address> in {ssh:?}"));
    let [a, b, c, d] = public.octets();
    assert!(
        (a, b, c) == (172, 24, range) && d > 1,
        "{public} is not in the public range {public_range} past its gateway: {ssh}"
    );
    // The terminal holds the all-in-one's own lines only, the first naming
    // the log file the services' lines go to.
    let log_file = seen
        .first()
        .and_then(|l| l.strip_prefix("stratus: service logs go to "))
        .and_then(|l| l.split(" (").next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("the log file is not named first: {seen:?}"));
    for line in &seen {
        assert!(
            line.starts_with("stratus: ") || line.trim().is_empty(),
            "not the all-in-one's own line: {line:?} in {seen:?}"
        );
        assert!(
            !line.contains(" INFO ") && !line.contains(" WARN "),
            "a service log line on the terminal: {line:?}"
        );
    }
    for step in ["[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"] {
        assert!(
            seen.iter().any(|l| l.contains(step)),
            "no progress line {step}: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("STRATUS-BOOT authorized key ssh-ed25519 SHA256:")),
        "the injected key's fingerprint is not on the console: {seen:?}"
    );

    // The printed command, as a user would paste it, runs in the guest.
    let text = command::stdout_of(
        Command::new("sh").arg("-c").arg(format!(
            "{ssh} -o BatchMode=yes -o ConnectTimeout=20 'cat /etc/stratus-image; wget -q -O - http://169.254.169.254/latest/meta-data/instance-id'"
        )),
        "ssh",
    );
    assert!(text.contains("stratus tiny image"), "{text}");
    assert!(
        text.contains("i-"),
        "the guest could not read its id from the metadata service: {text}"
    );

    // Ctrl-C stops the services cleanly.
    let mut child = left.child.take().expect("child");
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "all-in-one did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");

    // Without -v, stderr shows none of the services' lines; the log file
    // has them.
    let stderr = std::fs::read_to_string(left.state.path().join("stderr.log")).expect("stderr");
    assert!(
        !stderr.contains(" INFO ") && !stderr.contains(" WARN "),
        "service log lines on the terminal: {}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(
        log_file.starts_with(left.state.path()),
        "{} is not under the state directory",
        log_file.display()
    );
    let logged = std::fs::read_to_string(&log_file)
        .unwrap_or_else(|e| panic!("the printed log file {}: {e}", log_file.display()));
    assert!(
        logged.contains(" INFO ") && logged.contains("EC2 API listening"),
        "the services' lines are not in the log file: {}",
        &logged[..logged.len().min(500)]
    );
    // Secrets stay out of the logs: the demo's private key and the secret
    // access key it made are in their files, never in what was logged.
    let logged = format!("{logged}{stderr}");
    let pem =
        std::fs::read_to_string(left.state.path().join("demo/stratus-demo.pem")).expect("key file");
    let body: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    assert!(!body.is_empty());
    for line in body {
        assert!(!logged.contains(line), "a private key line is in the log");
    }
    let credentials =
        std::fs::read_to_string(left.state.path().join(".aws/credentials")).expect("credentials");
    let secret = credentials
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .expect("a secret");
    assert!(
        !logged.contains(secret),
        "the secret access key is in the log"
    );
}
