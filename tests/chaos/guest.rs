//! Reaching guests: the key pair they get and SSH from their namespace.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stratus::ec2_client::{Client, Ec2ClientError, texts};

use crate::describe::Instance;
use crate::invariants::Check;

/// The key pair's name.
pub const KEY_NAME: &str = "chaos";

/// Makes the key pair (its private key in `work`) and lets SSH into the
/// default group; retries while the api is not answering. The key's path.
pub async fn prepare(client: &Client, work: &Path) -> PathBuf {
    let made = retry(
        client,
        "CreateKeyPair",
        &[("KeyName", KEY_NAME), ("KeyType", "ed25519")],
    )
    .await
    .expect("CreateKeyPair");
    let key = texts(&made, "keyMaterial")
        .into_iter()
        .next()
        .expect("a private key");
    let path = work.join("chaos.pem");
    std::fs::write(&path, format!("{}\n", key.trim())).expect("key file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ssh = [
        ("GroupName", "default"),
        ("IpProtocol", "tcp"),
        ("FromPort", "22"),
        ("ToPort", "22"),
        ("CidrIp", "0.0.0.0/0"),
    ];
    match retry(client, "AuthorizeSecurityGroupIngress", &ssh).await {
        Ok(_) => {}
        Err(Ec2ClientError::Api { code, .. }) if code == "InvalidPermission.Duplicate" => {}
        Err(e) => panic!("AuthorizeSecurityGroupIngress: {e}"),
    }
    path
}

async fn retry(
    client: &Client,
    action: &str,
    params: &[(&str, &str)],
) -> Result<String, Ec2ClientError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.action(action, params).await {
            Err(Ec2ClientError::Transport(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => return other,
        }
    }
}

/// Every running instance's guest answers SSH (each tried until `within`).
pub async fn ssh_all(netns: &str, key: &Path, running: &[&Instance], within: Duration) -> Check {
    let mut probes = tokio::task::JoinSet::new();
    for i in running {
        let (id, address) = (i.id.clone(), i.address.clone());
        let (netns, key) = (netns.to_owned(), key.to_owned());
        probes.spawn(async move {
            let Some(address) = address else {
                return Some(format!("{id} runs without an address"));
            };
            let deadline = Instant::now() + within;
            let mut last = String::new();
            while Instant::now() < deadline {
                match ssh(&netns, &key, &address).await {
                    Ok(()) => return None,
                    Err(why) => last = why,
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Some(format!("{id} at {address}: {last}"))
        });
    }
    let mut violations = Vec::new();
    while let Some(done) = probes.join_next().await {
        match done {
            Ok(Some(v)) => violations.push(v),
            Ok(None) => {}
            Err(e) => violations.push(format!("an SSH probe failed: {e}")),
        }
    }
    Check {
        name: "running instance whose guest does not answer SSH",
        violations,
    }
}

async fn ssh(netns: &str, key: &Path, address: &str) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", netns, "ssh", "-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            &format!("root@{address}"),
            "cat /etc/stratus-image",
        ])
        .output()
        .await
        .map_err(|e| format!("ssh does not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
