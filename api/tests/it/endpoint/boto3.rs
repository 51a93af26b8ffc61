//! The real boto3 and AWS CLI against the endpoint, as the workspace's
//! `ec2_api` tests drive life.py: the venv's Python runs a script from
//! api/tests/ec2 with the endpoint and keys in its environment, then
//! ec2_check.py holds every saved response against botocore's EC2 model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Endpoint;

/// The Python the dev setup prepares, with boto3 and the AWS CLI.
const VENV: &str = "/var/lib/stratus-dev/venv";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2")
}

/// Runs a Python file from the venv; panics with its output if it fails.
async fn python(script: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(format!("{VENV}/bin/python"));
    command.arg(script).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.env("AWS_CLI", format!("{VENV}/bin/aws"));
    let out = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the script finished within 5 minutes")
        .expect("the venv python runs (deploy/dev-setup makes it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_egress_rules_default_authorize_revoke_and_fit_botocore() {
    let endpoint = Endpoint::start().await;
    let beta = endpoint.keys("beta").await;
    let responses = endpoint.root.path().join("responses");
    std::fs::create_dir_all(&responses).expect("responses folder");
    let out = python(
        &scripts().join("egress.py"),
        &[],
        &[
            ("STRATUS_ENDPOINT", endpoint.url.as_str()),
            ("ALPHA_KEY", &endpoint.alpha.access),
            ("ALPHA_SECRET", &endpoint.alpha.secret),
            ("BETA_KEY", &beta.access),
            ("BETA_SECRET", &beta.secret),
            ("RESPONSES_DIR", &responses.display().to_string()),
        ],
    )
    .await;
    assert!(out.contains("egress ok"), "{out}");
    let saved: Vec<String> = std::fs::read_dir(&responses)
        .expect("responses")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for operation in [
        "AuthorizeSecurityGroupEgress.200",
        "AuthorizeSecurityGroupEgress.400",
        "RevokeSecurityGroupEgress.200",
        "RevokeSecurityGroupEgress.400",
        "DescribeSecurityGroups.200",
    ] {
        assert!(
            saved.iter().any(|name| name.starts_with(operation)),
            "no {operation} response among {saved:?}"
        );
    }
    let report = python(
        &scripts().join("ec2_check.py"),
        &["--dir", &responses.display().to_string()],
        &[],
    )
    .await;
    println!("{report}");
}
