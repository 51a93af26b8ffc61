//! apache-libcloud's EC2 driver, unchanged, against a cloud on real guests
//! (issue 19): the driver built with host, port and secure=False as for any
//! custom EC2 endpoint (default region us-east-1, so libcloud signs with
//! SigV2), a key pair imported, a group opening SSH, `create_node` with a
//! size and an image built by id, `wait_until_running` answering the node's
//! public IP, SSH to it from the outside, the Elastic IP calls in libcloud's
//! two forms (by PublicIp, and by allocation/association id), `list_nodes`
//! showing the public IP, and `destroy_node`. The client's side is
//! tests/libcloud/acceptance.py, which prints one JSON report.
//!
//! `cargo test -p stratus-tests --test it libcloud` (about 2 minutes).

use std::time::Duration;

use crate::guest_cloud::{GuestCloud, PUBLIC_RANGE};

const PYTHON: &str = "/var/lib/stratus-dev/venv/bin/python";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn libcloud_ec2_driver_launches_reaches_and_moves_addresses_unchanged() {
    let (cloud, credentials) = GuestCloud::start("lc", &["libcloud"]).await;
    let work = cloud.state("work");
    std::fs::create_dir_all(&work).expect("work");
    let script = stratus_test_support::workspace::root().join("tests/libcloud/acceptance.py");
    let mut command = tokio::process::Command::new(PYTHON);
    command
        .arg(&script)
        .env("STRATUS_ENDPOINT", &cloud.endpoint)
        .env("KEY", &credentials[0].key)
        .env("SECRET", &credentials[0].secret)
        .env("IMAGE", &cloud.ami)
        .env("CLIENT_NETNS", &cloud.client)
        .env("PUBLIC_RANGE", PUBLIC_RANGE)
        .env("WORK", &work)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(480), command.output())
        .await
        .unwrap_or_else(|_| panic!("libcloud took over 8 minutes\n{}", cloud.logs()))
        .unwrap_or_else(|e| panic!("{PYTHON} (run deploy/dev-setup): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = text
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("no report from libcloud:\n{text}\n{}", cloud.logs()));
    assert!(
        report["ok"] == true && out.status.success(),
        "libcloud failed at step {:?}: {}\n{}\nseen: {}\n\nrun:\n{text}\n{}",
        report["step"],
        report["error"],
        report["traceback"].as_str().unwrap_or_default(),
        report["seen"],
        cloud.logs()
    );
    let seen = &report["seen"];
    // What a reader of a pass may want to know: how libcloud spoke, and
    // which addresses it was given.
    eprintln!("libcloud saw: {seen}");
    assert_eq!(seen["signature_version"], "2", "{report}");
    let public = seen["public_ip"].as_str().unwrap_or_default();
    assert!(
        !public.is_empty() && !seen["private_ips"].to_string().contains(public),
        "{report}"
    );
    for form in ["standard", "vpc"] {
        let elastic = seen[format!("{form}_address")].as_str().unwrap_or_default();
        assert!(!elastic.is_empty() && elastic != public, "{form}: {report}");
    }
}
