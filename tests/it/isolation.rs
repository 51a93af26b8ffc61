//! Tenants are isolated on the wire, tried from hostile real guests: a
//! victim V in project A (SSH open to the test's client, a web service on
//! 8080 its groups do not open, a secret in its user data), an attacker X
//! in project B and an attacker Y in project A. Over SSH the attackers try
//! IP spoofing, MAC spoofing, ARP poisoning of the router and of V, a rogue
//! DHCP server against fresh guests, V's metadata, V's closed port, and the
//! cloud's addresses as sources with their source/destination check off.
//! Then V's security groups change while it runs (ModifyInstanceAttribute
//! groupSet): A's owner moves V into a group opening 8080 to Y's group (Y
//! gets in, X does not) and back out (Y loses it); B's owner tries to change
//! V's groups, to put A's groups on X, and to put its own group open to all
//! on V. Each attempt sits next to a control that must succeed, so the test
//! cannot pass on a network that merely drops everything. A listener on the
//! router's side of the guests' bridges sees what arrives, before any IP
//! layer filtering. The tenants' side is tests/isolation/hostile.py
//! (attacks.py: the attempts; regroup.py: the group changes; guests.py:
//! reaching guests; sniff.py: the listener). A failure names each attempt
//! that succeeded, with what was captured.
//!
//! `cargo test -p stratus-tests --test it isolation` (about 4.5 minutes on
//! a protected cloud; longer where attacks succeed and the victim's
//! network has to recover).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::guest_cloud::{CLIENT_ADDRESS, GuestCloud, PUBLIC_GATEWAY};

const PYTHON: &str = "/var/lib/stratus-dev/venv/bin/python";

/// The listener in the router namespace, stopped on drop.
struct Sniffer {
    child: Child,
    log: std::path::PathBuf,
}

impl Sniffer {
    fn start(router: &str, log: std::path::PathBuf) -> Self {
        let script = stratus_test_support::workspace::root().join("tests/isolation/sniff.py");
        let child = Command::new("ip")
            .args(["netns", "exec", router, PYTHON])
            .arg(&script)
            .arg(&log)
            .args(["40000", "40999"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the listener starts");
        let sniffer = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&sniffer.log)
            .unwrap_or_default()
            .contains("ready")
        {
            assert!(Instant::now() < deadline, "the listener never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        sniffer
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each row of the report, as a reader of a failure needs it.
fn describe(rows: &[&serde_json::Value]) -> String {
    rows.iter()
        .map(|row| {
            format!(
                "- {} by {}\n  evidence: {}",
                row["attempt"].as_str().unwrap_or("?"),
                row["attacker"].as_str().unwrap_or("?"),
                serde_json::to_string_pretty(&row["evidence"])
                    .unwrap_or_default()
                    .replace('\n', "\n  ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_guests_cannot_spoof_poison_or_reach_another_tenant() {
    let (cloud, credentials) = GuestCloud::start("iso", &["iso-a", "iso-b"]).await;
    let sniffer = Sniffer::start(&cloud.router, cloud.state("sniff.jsonl"));
    let work = cloud.state("work");
    std::fs::create_dir_all(&work).expect("work");
    let secret = format!("VSECRET-{}", uuid::Uuid::new_v4().simple());
    let script = stratus_test_support::workspace::root().join("tests/isolation/hostile.py");
    let mut command = tokio::process::Command::new(PYTHON);
    command
        .arg(&script)
        .env("STRATUS_ENDPOINT", &cloud.endpoint)
        .env("A_KEY", &credentials[0].key)
        .env("A_SECRET", &credentials[0].secret)
        .env("B_KEY", &credentials[1].key)
        .env("B_SECRET", &credentials[1].secret)
        .env("IMAGE", &cloud.ami)
        .env("CLIENT_NETNS", &cloud.client)
        .env("CLIENT_ADDRESS", CLIENT_ADDRESS)
        .env("PUBLIC_GATEWAY", PUBLIC_GATEWAY)
        .env("ROUTER_NETNS", &cloud.router)
        .env("SNIFF_LOG", &sniffer.log)
        .env("VICTIM_SECRET", &secret)
        .env("WORK", &work)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .unwrap_or_else(|_| panic!("the attacks took over 10 minutes\n{}", cloud.logs()))
        .expect("the venv python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = text
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("no report from the attacks:\n{text}\n{}", cloud.logs()));
    let with = |outcome: &str| -> Vec<&serde_json::Value> {
        rows.iter().filter(|r| r["outcome"] == outcome).collect()
    };
    let (broken, breached, held) = (with("control-failed"), with("breached"), with("held"));
    // Shown with a failure: the run, and what each held attempt saw.
    for line in text.lines().filter(|l| l.starts_with("isolation: ")) {
        eprintln!("{line}");
    }
    eprintln!("held:\n{}", describe(&held));
    assert!(
        broken.is_empty(),
        "controls failed, so these attempts prove nothing:\n{}\n\nlog:\n{text}\n{}",
        describe(&broken),
        cloud.logs()
    );
    assert!(
        breached.is_empty(),
        "{} attempt(s) succeeded (isolation broken):\n{}\n\n{} held: {}",
        breached.len(),
        describe(&breached),
        held.len(),
        held.iter()
            .map(|r| r["attempt"].as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // Per attacker: three ports (fixed, public, IPv6), the public address
    // hijack, two spoofs, the source/destination check off and on again,
    // two poisonings, metadata, the victim afterwards; X also tries V's
    // check; then five regroupings, the rogue DHCP server and the victim at
    // the end.
    assert!(held.len() >= 32, "not every attempt ran:\n{text}");
}
