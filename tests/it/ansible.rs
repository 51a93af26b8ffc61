//! Ansible's amazon.aws collection, as its users write for AWS
//! (tests/ansible/playbook.yml), against a cloud on real guests: the api,
//! scheduler, network controller and a compute worker on libvirt (TCG), with
//! the public range reachable from the test's client namespace. The playbook
//! asserts what it finds and that a second run of each task changes nothing,
//! and logs into the launched instance over SSH at its Elastic IP (through
//! the client namespace, as a machine on the public network would); this test
//! runs it and shows its output on failure.
//!
//! `cargo test -p stratus-tests --test it ansible` (about 2 minutes).

use std::time::Duration;

use crate::ec2_api::VENV;
use crate::guest_cloud::GuestCloud;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ansible_playbook_written_for_aws_runs_unchanged() {
    let (cloud, credentials) = GuestCloud::start("an", &["ansible"]).await;
    let playbook = stratus_test_support::workspace::root().join("tests/ansible/playbook.yml");
    let home = cloud.state("ansible-home");
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
        .env("PATH", format!("{VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        .env("HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_PYTHON_INTERPRETER", format!("{VENV}/bin/python"))
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("STRATUS_ENDPOINT", &cloud.endpoint)
        .env("STRATUS_REGION", "nova")
        .env("STRATUS_KEY", &credentials[0].key)
        .env("STRATUS_SECRET", &credentials[0].secret)
        .env("STRATUS_IMAGE", &cloud.ami)
        .env("STRATUS_PUBLIC_KEY", public_key.trim())
        .env("STRATUS_PRIVATE_KEY", &key_file)
        .env(
            "STRATUS_SSH_ARGS",
            format!(
                "-o ProxyCommand=\"ip netns exec {} busybox nc %h %p\"",
                cloud.client
            ),
        )
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
    assert!(
        out.status.success(),
        "the playbook failed:\n{text}\n{}",
        cloud.logs()
    );
    // The recap: both hosts (this one and the guest), every task ran, none
    // failed or was skipped.
    let recap: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .filter(|l| l.contains(" ok="))
        .collect();
    println!("{text}");
    assert_eq!(
        recap.len(),
        2,
        "the recap names localhost and the guest:\n{text}"
    );
    for line in recap {
        for clean in ["failed=0", "skipped=0", "unreachable=0", "ignored=0"] {
            assert!(line.contains(clean), "{line}\n{text}");
        }
    }
}
