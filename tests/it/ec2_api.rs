//! The EC2 API driven by the real AWS CLI and boto3 (api/tests/ec2/life.py)
//! against a cloud in this process: the api service on a loopback port,
//! the scheduler, a network controller (public NAT recorded by a fake host)
//! and two compute workers on the fake driver, over the in-process bus. Every response the clients got is then
//! checked against botocore's EC2 model (api/tests/ec2/ec2_check.py).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stratus::fake_cloud::{FakeCloud, Options};
use stratus_api::config::{PublicAddressing, Quotas};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_test_support::command;

/// The Python the dev setup prepares, with boto3 and the AWS CLI.
pub const VENV: &str = "/var/lib/stratus-dev/venv";

/// A small raw disk holding an ext4 file system (keys are injected into it
/// for real), under the cloud's image folder.
pub fn image_file(cloud: &FakeCloud) -> PathBuf {
    let path = cloud.images.join("disk.img");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(64 << 20))
        .expect("image file");
    command::run(
        Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&path),
        "deploy/dev-setup installs e2fsprogs",
    );
    path
}

fn api_tests() -> PathBuf {
    stratus_test_support::workspace::root().join("api/tests/ec2")
}

/// Runs a Python file from the venv; panics with its output if it fails.
pub async fn python(script: &Path, args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = tokio::process::Command::new(format!("{VENV}/bin/python"));
    command.arg(script).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.env("AWS_CLI", format!("{VENV}/bin/aws"));
    let out = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("the script finished within 10 minutes")
        .expect("the venv python runs (deploy/dev-setup makes it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
    text
}

/// What a script acting for two projects reads: the endpoint, the keys of
/// project alpha and of project beta, and an image file to register.
async fn two_projects(cloud: &FakeCloud) -> Vec<(&'static str, String)> {
    let (alpha_key, alpha_secret) = cloud.credentials("alpha", "alice").await.expect("keys");
    let (beta_key, beta_secret) = cloud.credentials("beta", "bob").await.expect("keys");
    vec![
        ("STRATUS_ENDPOINT", cloud.endpoint.clone()),
        ("ALPHA_KEY", alpha_key),
        ("ALPHA_SECRET", alpha_secret),
        ("BETA_KEY", beta_key),
        ("BETA_SECRET", beta_secret),
        ("IMAGE_PATH", image_file(cloud).display().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_cli_and_boto3_live_a_whole_life_and_every_response_fits_botocore() {
    a_whole_life(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_life_with_the_api_tables_on_postgresql() {
    let db = stratus_test_support::TestDb::postgres();
    a_whole_life(Some(db.url())).await;
}

async fn a_whole_life(database_url: Option<String>) {
    // A public range for launch addresses and Elastic IPs; the network
    // controller's NAT goes to the fake host, so any range will do.
    let public = PublicAddressing {
        range: "172.24.4.0/24".parse().expect("range"),
        on_launch: true,
        dns_domain: "compute.stratus".into(),
    };
    let quotas = Quotas {
        instances: 8,
        addresses: 5,
        ..Quotas::default()
    };
    let cloud = FakeCloud::start(Options {
        quotas: quotas.clone(),
        database_url,
        public: Some(public.clone()),
        ..Options::default()
    })
    .await
    .expect("cloud");
    let responses = cloud.dir.path().join("responses");
    std::fs::create_dir_all(&responses).expect("responses");
    let mut env = two_projects(&cloud).await;
    env.push(("RESPONSES_DIR", responses.display().to_string()));
    env.push(("PUBLIC_RANGE", public.range.to_string()));
    env.push(("PUBLIC_DNS_DOMAIN", public.dns_domain));
    env.push(("ADDRESS_QUOTA", quotas.addresses.to_string()));
    let out = python(&api_tests().join("life.py"), &[], &env).await;
    assert!(out.contains("life ok"), "{out}");
    let saved = std::fs::read_dir(&responses).expect("responses").count();
    assert!(saved > 60, "only {saved} responses saved");
    let report = python(
        &api_tests().join("ec2_check.py"),
        &["--dir", &responses.display().to_string()],
        &[],
    )
    .await;
    println!("{report}");
}

#[tokio::test]
async fn the_response_checker_passes_its_own_tests() {
    python(&api_tests().join("test_ec2_check.py"), &[], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_action_lets_one_project_see_or_touch_anothers_resources() {
    let cloud = FakeCloud::start(Options::default()).await.expect("cloud");
    let env = two_projects(&cloud).await;
    let out = python(&api_tests().join("isolation.py"), &[], &env).await;
    assert!(out.contains("isolation ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_naming_a_group_reaches_hosts_that_run_none_of_its_members() {
    use stratus::ec2_client::{Client, texts};
    let cloud = FakeCloud::start(Options::default()).await.expect("cloud");
    let db = &cloud.api.cloud.db;
    // An administrator, so each instance can be put on a host of its own.
    let admin = stratus_api::admin::create_credentials(db, "gamma", "gil", true)
        .await
        .expect("keys");
    let ec2 = Client::new(
        &cloud.endpoint,
        &cloud.api.cloud.config.region,
        &admin.access_key,
        &admin.secret_key,
    );
    let image = stratus_api::admin::import_image(db, "disk", &image_file(&cloud), None, None)
        .await
        .expect("image")
        .image_id;
    let mut groups = Vec::new();
    for name in ["web", "db"] {
        let made = ec2
            .action(
                "CreateSecurityGroup",
                &[("GroupName", name), ("GroupDescription", name)],
            )
            .await
            .expect("CreateSecurityGroup");
        groups.push(texts(&made, "groupId").remove(0));
    }
    let (web, dbg) = (&groups[0], &groups[1]);
    let mut ids = Vec::new();
    for (group, host) in [(dbg, "node-000"), (web, "node-001")] {
        let zone = format!("nova:{host}");
        let ran = crate::cloud::run_one(
            &ec2,
            &image,
            &[
                ("SecurityGroupId.1", group.as_str()),
                ("Placement.AvailabilityZone", zone.as_str()),
            ],
        )
        .await
        .expect("RunInstances");
        ids.push(texts(&ran, "instanceId").remove(0));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let db_address = loop {
        let row = db
            .instance_by_ec2_id(&ids[0])
            .await
            .expect("read")
            .expect("row");
        let web_row = db
            .instance_by_ec2_id(&ids[1])
            .await
            .expect("read")
            .expect("row");
        if let Some(address) = row.fixed_ip.filter(|_| row.state == InstanceState::Running)
            && web_row.state == InstanceState::Running
        {
            break address;
        }
        assert!(std::time::Instant::now() < deadline, "not running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // web admits db: node-001 runs only web, and must learn db's members.
    ec2.action(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", web.as_str()),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "5432"),
            ("IpPermissions.1.ToPort", "5432"),
            ("IpPermissions.1.Groups.1.GroupId", dbg.as_str()),
        ],
    )
    .await
    .expect("AuthorizeSecurityGroupIngress");
    let db_group: stratus_rpc::wire::ids::SecurityGroupId = dbg.parse().expect("group id");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = cloud.workers[1].manager.firewall().state().await;
        let members: Vec<String> = state
            .groups
            .get(&db_group)
            .map(|g| g.members.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        if members == [db_address.clone()] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-001 knows db's members as {members:?}, not [{db_address}]"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
