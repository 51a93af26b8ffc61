//! The README's main job: `stratus all-in-one` on real libvirt (TCG) builds
//! and registers the tiny image, boots a guest in its own network namespace,
//! prints an ssh command — which must work while it keeps serving — and
//! stops on Ctrl-C.

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

#[test]
fn all_in_one_boots_a_guest_and_prints_an_ssh_command_that_works() {
    let state = tempfile::tempdir().expect("tempdir");
    let netns = format!("st-aio-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let child = Command::new(stratus_bin())
        .arg("all-in-one")
        .current_dir(stratus_test_support::workspace::root())
        .env("STRATUS_NODE__STATE_DIR", state.path())
        .env("STRATUS_NODE__NETNS", &netns)
        .env("STRATUS_NODE__HOST", "aio")
        .env("STRATUS_API__LISTEN", format!("127.0.0.1:{}", free_port()))
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
        if line
            .trim_start()
            .starts_with(&format!("ip netns exec {} ssh ", left.netns))
        {
            break line.trim().to_owned();
        }
        seen.push(line);
    };
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

    // Secrets stay out of the logs: the demo's private key and the secret
    // access key it made are in their files, never in what was logged.
    let logged = std::fs::read_to_string(left.state.path().join("stderr.log")).expect("log");
    assert!(
        logged.contains("EC2 API listening"),
        "the log was captured: {}",
        &logged[..logged.len().min(500)]
    );
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
