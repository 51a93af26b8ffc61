//! How the public-address test reaches the cloud: one tenant's EC2 calls,
//! and the outside's view of guests (SSH, TCP connects, open sessions) from
//! the client namespace.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use stratus::bench::guest::SSH_OPTIONS;
use stratus::ec2_client::{Client, Ec2ClientError, first_text};

use crate::guest_cloud::{Credentials, GuestCloud, PUBLIC_GATEWAY, PUBLIC_RANGE};

/// The default `[network] public_dns_domain`.
pub(super) const DNS_DOMAIN: &str = "compute.stratus";

/// A guest command answering "<instance id>\n<public-ipv4>\n<public-hostname>"
/// from the metadata service, which knows each guest by its fixed IP.
pub(super) const WHO: &str = "md=http://169.254.169.254/latest/meta-data; \
    timeout 5 wget -q -O - $md/instance-id; echo; \
    timeout 5 wget -q -O - $md/public-ipv4; echo; \
    timeout 5 wget -q -O - $md/public-hostname; echo";

/// An EC2 call that must succeed; its answer.
pub(super) async fn call(
    cloud: &GuestCloud,
    ec2: &Client,
    action: &str,
    params: &[(&str, &str)],
) -> String {
    ec2.action(action, params)
        .await
        .unwrap_or_else(|e| panic!("{action} {params:?}: {e}\n{}", cloud.logs()))
}

/// An EC2 call that must be refused; its error code.
pub(super) async fn refused(
    cloud: &GuestCloud,
    ec2: &Client,
    action: &str,
    params: &[(&str, &str)],
) -> String {
    match ec2.action(action, params).await {
        Err(Ec2ClientError::Api { code, .. }) => code,
        Ok(body) => panic!("{action} {params:?} was accepted: {body}\n{}", cloud.logs()),
        Err(e) => panic!("{action} {params:?}: {e}\n{}", cloud.logs()),
    }
}

/// One project: its client, SSH key and a group opening 22 to anyone.
pub(super) struct Tenant {
    pub(super) ec2: Client,
    key: PathBuf,
    group: String,
}

impl Tenant {
    /// A key pair and an SSH group made in the project of `credentials`.
    pub(super) async fn new(cloud: &GuestCloud, credentials: &Credentials, name: &str) -> Self {
        let ec2 = Client::new(
            &cloud.endpoint,
            "nova",
            &credentials.key,
            &credentials.secret,
        );
        let made = call(
            cloud,
            &ec2,
            "CreateKeyPair",
            &[("KeyName", name), ("KeyType", "ed25519")],
        )
        .await;
        let material = first_text(&made, "keyMaterial").expect("keyMaterial");
        let key = cloud.state(&format!("{name}.pem"));
        std::fs::write(&key, format!("{}\n", material.trim_end())).expect("key file");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let created = call(
            cloud,
            &ec2,
            "CreateSecurityGroup",
            &[
                ("GroupName", name),
                ("GroupDescription", "public addresses"),
            ],
        )
        .await;
        let group = first_text(&created, "groupId").expect("groupId");
        let tenant = Self { ec2, key, group };
        tenant.open(cloud, "22").await;
        tenant
    }

    /// Opens TCP `port` of the tenant's group to every source.
    pub(super) async fn open(&self, cloud: &GuestCloud, port: &str) {
        call(
            cloud,
            &self.ec2,
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", self.group.as_str()),
                ("IpProtocol", "tcp"),
                ("FromPort", port),
                ("ToPort", port),
                ("CidrIp", "0.0.0.0/0"),
            ],
        )
        .await;
    }

    /// Runs one tiny guest with the key `name` and the tenant's group; its id.
    pub(super) async fn launch(&self, cloud: &GuestCloud, name: &str) -> String {
        let ran = call(
            cloud,
            &self.ec2,
            "RunInstances",
            &[
                ("ImageId", cloud.ami.as_str()),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "m1.tiny"),
                ("KeyName", name),
                ("SecurityGroupId.1", self.group.as_str()),
            ],
        )
        .await;
        first_text(&ran, "instanceId").expect("instanceId")
    }

    /// DescribeInstances of `id`.
    pub(super) async fn describe(&self, cloud: &GuestCloud, id: &str) -> String {
        call(
            cloud,
            &self.ec2,
            "DescribeInstances",
            &[("InstanceId.1", id)],
        )
        .await
    }

    /// The instance's public IP now, if it has one.
    pub(super) async fn public_ip(&self, cloud: &GuestCloud, id: &str) -> Option<String> {
        first_text(&self.describe(cloud, id).await, "ipAddress").filter(|a| !a.is_empty())
    }

    /// Waits until `id` runs with a public IP; (public IP, fixed IP).
    pub(super) async fn running(&self, cloud: &GuestCloud, id: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let d = self.describe(cloud, id).await;
            let state = first_text(&d, "name").unwrap_or_default();
            let public = first_text(&d, "ipAddress").filter(|a| !a.is_empty());
            let fixed = first_text(&d, "privateIpAddress").filter(|a| !a.is_empty());
            if let ("running", Some(public), Some(fixed)) = (state.as_str(), public, fixed) {
                return (public, fixed);
            }
            assert!(
                state != "terminated" && Instant::now() < deadline,
                "{id} never ran with a public IP: {d}\n{}",
                cloud.logs()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// (publicIp, instanceId, associationId) of `allocation` as this
    /// tenant's DescribeAddresses shows it.
    pub(super) async fn address(
        &self,
        cloud: &GuestCloud,
        allocation: &str,
    ) -> (String, String, String) {
        let d = call(
            cloud,
            &self.ec2,
            "DescribeAddresses",
            &[("AllocationId.1", allocation)],
        )
        .await;
        let field = |name: &str| first_text(&d, name).unwrap_or_default();
        (
            field("publicIp"),
            field("instanceId"),
            field("associationId"),
        )
    }
}

/// `ssh root@address command` from the outside; (success, output).
pub(super) fn ssh(
    cloud: &GuestCloud,
    tenant: &Tenant,
    address: &str,
    command: &str,
) -> (bool, String) {
    let key = tenant.key.display().to_string();
    let target = format!("root@{address}");
    let out = cloud
        .in_client("timeout", &ssh_args(&key, &target, command))
        .output()
        .expect("ssh runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `timeout`'s arguments: 40 s of `ssh` to `target` running `command`.
fn ssh_args<'a>(key: &'a str, target: &'a str, command: &'a str) -> Vec<&'a str> {
    let mut args = vec!["40", "ssh", "-i", key];
    args.extend_from_slice(SSH_OPTIONS);
    args.extend([target, command]);
    args
}

/// SSH from the outside until it succeeds with an answer `wanted` accepts
/// (a guest may still boot; an address may still move); the answer.
pub(super) async fn ssh_until(
    cloud: &GuestCloud,
    tenant: &Tenant,
    address: &str,
    wanted: impl Fn(&str) -> bool,
    within: Duration,
    what: &str,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (ok, out) = ssh(cloud, tenant, address, WHO);
        if ok && wanted(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: ssh root@{address} from the outside kept failing or answering wrong \
             for {within:?}; last: {out}\n{}",
            cloud.logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether a TCP connection from the outside to `address:port` opens
/// within 3 s.
pub(super) fn tcp_open(cloud: &GuestCloud, address: &str, port: u16) -> bool {
    cloud
        .in_client(
            "timeout",
            &[
                "3",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{address}/{port}"),
            ],
        )
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Waits until `address:port` is open (or closed) from the outside.
pub(super) async fn wait_tcp(cloud: &GuestCloud, address: &str, port: u16, open: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tcp_open(cloud, address, port) != open {
        assert!(
            Instant::now() < deadline,
            "{what}: {address}:{port} stayed {} from the outside\n{}",
            if open { "closed" } else { "open" },
            cloud.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What `GET /` on `address:port` from the outside answers within 5 s.
pub(super) fn http_get(cloud: &GuestCloud, address: &str, port: u16) -> String {
    let fetched = cloud
        .in_client(
            "timeout",
            &[
                "5",
                "bash",
                "-c",
                &format!(
                    "exec 3<>/dev/tcp/{address}/{port}; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
                ),
            ],
        )
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&fetched.stdout).into_owned()
}

/// An SSH session from the outside that prints a tick a second for `secs`.
pub(super) fn session(cloud: &GuestCloud, tenant: &Tenant, address: &str, secs: u32) -> Child {
    let key = tenant.key.display().to_string();
    let target = format!("root@{address}");
    let command =
        format!("i=0; while [ $i -lt {secs} ]; do echo tick$i; i=$((i+1)); sleep 1; done");
    cloud
        .in_client("timeout", &ssh_args(&key, &target, &command))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs")
}

/// The session ran to its end: the connection held throughout.
pub(super) fn session_held(cloud: &GuestCloud, child: Child, secs: u32, what: &str) {
    let out = child.wait_with_output().expect("ssh ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("tick{}", secs - 1)),
        "{what}: an open SSH session broke: {text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cloud.logs()
    );
}

/// The line each service logs once it serves.
const READY: &str = "ready; Ctrl-C or SIGTERM stops";

/// How many times the process `name` has said it serves.
fn times_ready(cloud: &GuestCloud, name: &str) -> usize {
    cloud.log(name).matches(READY).count()
}

/// Respawns the killed process `name` and waits until it serves again,
/// past its start-up work.
pub(super) async fn respawn_ready(cloud: &mut GuestCloud, name: &str) {
    let before = times_ready(cloud, name);
    cloud.respawn(name);
    wait_ready(cloud, name, before).await;
}

/// Waits until the process `name` says it serves for the time after
/// `before` (a respawned service, past its start-up work).
async fn wait_ready(cloud: &GuestCloud, name: &str, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while times_ready(cloud, name) <= before {
        assert!(
            Instant::now() < deadline,
            "{name} never served again after its respawn\n{}",
            cloud.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Whether `address` is an allocatable address of the public range.
pub(super) fn in_public_range(address: &str) -> bool {
    let range: ipnet::Ipv4Net = PUBLIC_RANGE.parse().expect("the range");
    address
        .parse::<Ipv4Addr>()
        .is_ok_and(|a| range.contains(&a) && a.to_string() != PUBLIC_GATEWAY)
}

/// The addresses bound on the router's public interface, one a line.
pub(super) fn bound_public(cloud: &GuestCloud) -> String {
    stratus_test_support::sh(
        "ip",
        &[
            "-n",
            &cloud.router,
            "-o",
            "addr",
            "show",
            "dev",
            "stratus-pub",
        ],
    )
}
