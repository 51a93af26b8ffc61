//! Ansible's amazon.aws collection, as its users write for AWS
//! (tests/ansible/playbook.yml), against a cloud in this process: the api on
//! a loopback port, the scheduler, the network controller and two compute
//! workers on the fake driver over the in-process bus, with a public range.
//! The playbook asserts what it finds and that a second run of each task
//! changes nothing; this test runs it and shows its output on failure.

use std::time::Duration;

use stratus::fake_cloud::{FakeCloud, Options};
use stratus_api::config::PublicAddressing;

use crate::ec2_api::{VENV, image_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ansible_playbook_written_for_aws_runs_unchanged() {
    let cloud = FakeCloud::start(Options {
        public: Some(PublicAddressing {
            range: "172.24.4.0/24".parse().expect("range"),
            on_launch: true,
            dns_domain: "compute.stratus".into(),
        }),
        ..Options::default()
    })
    .await
    .expect("cloud");
    let (key, secret) = cloud.credentials("ansible", "ann").await.expect("keys");
    let db = &cloud.api.cloud.db;
    let image = stratus_api::admin::import_image(db, "disk", &image_file(&cloud), None, None)
        .await
        .expect("image")
        .image_id;
    let playbook = stratus_test_support::workspace::root().join("tests/ansible/playbook.yml");
    let home = cloud.dir.path().join("ansible-home");
    std::fs::create_dir_all(&home).expect("home");
    let key_file = home.join("id_ed25519");
    stratus_test_support::command::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ann@ansible", "-f"])
            .arg(&key_file),
        "deploy/dev-setup installs openssh-client",
    );
    let public_key = std::fs::read_to_string(key_file.with_extension("pub")).expect("public key");
    let mut command = tokio::process::Command::new(format!("{VENV}/bin/ansible-playbook"));
    command
        .arg(&playbook)
        .env("PATH", format!("{VENV}/bin:/usr/bin:/bin"))
        .env("HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_PYTHON_INTERPRETER", format!("{VENV}/bin/python"))
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("STRATUS_ENDPOINT", &cloud.endpoint)
        .env("STRATUS_REGION", &cloud.api.cloud.config.region)
        .env("STRATUS_KEY", &key)
        .env("STRATUS_SECRET", &secret)
        .env("STRATUS_IMAGE", &image)
        .env("STRATUS_PUBLIC_KEY", public_key.trim())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("the playbook finished within 10 minutes")
        .expect("ansible-playbook runs (deploy/dev-setup installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the playbook failed:\n{text}");
    // The recap: every task ran, none failed or was skipped.
    let recap = text
        .lines()
        .find(|l| l.starts_with("localhost"))
        .unwrap_or_else(|| panic!("no play recap:\n{text}"));
    println!("{text}");
    for clean in ["failed=0", "skipped=0", "unreachable=0", "ignored=0"] {
        assert!(recap.contains(clean), "{recap}\n{text}");
    }
}
