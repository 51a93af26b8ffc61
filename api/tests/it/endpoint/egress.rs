//! Security-group egress rules through the endpoint: EC2's default rule on
//! every group, Authorize/RevokeSecurityGroupEgress with EC2's errors, the
//! rendering in DescribeSecurityGroups, what the compute hosts are sent, and
//! another project's groups out of reach.

use stratus_rpc::wire::firewall::{RuleSpec, SecurityGroupUpdate};

use super::{Answer, Endpoint, Keys};

/// The inner text of each `<name>…</name>` in `body`, in order.
pub fn sections(body: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).expect("a closed element");
        found.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    found
}

/// The default egress rule as DescribeSecurityGroups renders it.
const ALLOW_ALL: &str = "<item><ipProtocol>-1</ipProtocol><groups></groups>\
    <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges>\
    <ipv6Ranges></ipv6Ranges><prefixListIds></prefixListIds></item>";

/// The `ipPermissionsEgress` of the group `group_id` as `keys` describe it.
async fn egress_of(endpoint: &Endpoint, keys: &Keys, group_id: &str) -> String {
    let described = endpoint
        .call_as(keys, "DescribeSecurityGroups", &[("GroupId.1", group_id)])
        .await
        .ok();
    let mut egress = sections(&described.body, "ipPermissionsEgress");
    assert_eq!(egress.len(), 1, "{}", described.body);
    egress.remove(0)
}

pub async fn create(endpoint: &Endpoint, keys: &Keys, name: &str) -> String {
    endpoint
        .call_as(
            keys,
            "CreateSecurityGroup",
            &[("GroupName", name), ("GroupDescription", name)],
        )
        .await
        .ok()
        .texts("groupId")
        .remove(0)
}

/// A new endpoint, project alpha's keys and its new groups of these names.
pub async fn with_groups<const N: usize>(names: [&str; N]) -> (Endpoint, Keys, [String; N]) {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    let mut ids = [const { String::new() }; N];
    for (id, name) in ids.iter_mut().zip(names) {
        *id = create(&endpoint, &alpha, name).await;
    }
    (endpoint, alpha, ids)
}

/// Authorize or Revoke egress (`action`) on `group` with `extra` parameters.
pub async fn egress(
    endpoint: &Endpoint,
    keys: &Keys,
    action: &str,
    group: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut params = vec![("GroupId", group)];
    params.extend_from_slice(extra);
    endpoint.call_as(keys, action, &params).await
}

/// AuthorizeSecurityGroupEgress on `group` as alpha.
pub async fn authorize(endpoint: &Endpoint, group: &str, extra: &[(&str, &str)]) -> Answer {
    let alpha = endpoint.alpha.clone();
    egress(
        endpoint,
        &alpha,
        "AuthorizeSecurityGroupEgress",
        group,
        extra,
    )
    .await
}

/// RevokeSecurityGroupEgress on `group` as alpha.
pub async fn revoke(endpoint: &Endpoint, group: &str, extra: &[(&str, &str)]) -> Answer {
    let alpha = endpoint.alpha.clone();
    egress(endpoint, &alpha, "RevokeSecurityGroupEgress", group, extra).await
}

const HTTPS_OUT: &[(&str, &str)] = &[
    ("IpPermissions.1.IpProtocol", "tcp"),
    ("IpPermissions.1.FromPort", "443"),
    ("IpPermissions.1.ToPort", "443"),
    ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
];

pub const ALL_OUT: &[(&str, &str)] = &[
    ("IpPermissions.1.IpProtocol", "-1"),
    ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
];

fn specs(rules: &[stratus_rpc::wire::firewall::IngressRule]) -> Vec<RuleSpec> {
    rules.iter().cloned().map(RuleSpec::from).collect()
}

fn spec(
    protocol: &str,
    ports: Option<(i32, i32)>,
    cidr: Option<&str>,
    group: Option<&str>,
) -> RuleSpec {
    RuleSpec {
        protocol: protocol.into(),
        from_port: ports.map(|p| p.0),
        to_port: ports.map(|p| p.1),
        cidr: cidr.map(Into::into),
        source_group: group.map(Into::into),
    }
}

#[tokio::test]
async fn new_groups_and_the_default_group_let_everything_out() {
    let (endpoint, alpha, [web]) = with_groups(["web"]).await;
    let described = endpoint.call("DescribeSecurityGroups", &[]).await.ok();
    assert_eq!(described.texts("groupName"), ["default", "web"]);
    assert_eq!(
        sections(&described.body, "ipPermissionsEgress"),
        [ALLOW_ALL, ALLOW_ALL],
        "{}",
        described.body
    );
    // Ingress starts empty, as in EC2.
    assert_eq!(sections(&described.body, "ipPermissions"), ["", ""]);
    assert_eq!(egress_of(&endpoint, &alpha, &web).await, ALLOW_ALL);
}

#[tokio::test]
async fn egress_rules_are_authorized_described_and_revoked() {
    let (endpoint, alpha, [web, db]) = with_groups(["web", "db"]).await;

    let authorized = authorize(&endpoint, &web, HTTPS_OUT).await.ok();
    assert_eq!(authorized.texts("return"), ["true"]);
    let to_db = [
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "5432"),
        ("IpPermissions.1.ToPort", "5432"),
        ("IpPermissions.1.UserIdGroupPairs.1.GroupId", db.as_str()),
    ];
    authorize(&endpoint, &web, &to_db).await.ok();
    let shown = egress_of(&endpoint, &alpha, &web).await;
    assert!(shown.starts_with(ALLOW_ALL), "{shown}");
    assert!(
        shown.contains(
            "<item><ipProtocol>tcp</ipProtocol><fromPort>443</fromPort><toPort>443</toPort>\
             <groups></groups><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges>"
        ),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "<fromPort>5432</fromPort><toPort>5432</toPort><groups><item><userId>{}</userId>\
             <groupId>{db}</groupId><groupName>db</groupName></item></groups><ipRanges></ipRanges>",
            stratus_api::ec2::ids::account_id("alpha")
        )),
        "{shown}"
    );
    // Ingress is a different list: untouched.
    let described = endpoint
        .call("DescribeSecurityGroups", &[("GroupId.1", &web)])
        .await
        .ok();
    assert_eq!(sections(&described.body, "ipPermissions"), [""]);

    // The same rule twice, or one never given, as EC2 answers.
    authorize(&endpoint, &web, HTTPS_OUT)
        .await
        .refused(400, "InvalidPermission.Duplicate");
    revoke(&endpoint, &web, HTTPS_OUT).await.ok();
    revoke(&endpoint, &web, HTTPS_OUT)
        .await
        .refused(400, "InvalidPermission.NotFound");
    // An egress rule is not an ingress rule.
    endpoint
        .call(
            "RevokeSecurityGroupIngress",
            &[("GroupId", &web), ALL_OUT[0], ALL_OUT[1]],
        )
        .await
        .refused(400, "InvalidPermission.NotFound");

    // Without the default rule nothing else but what was authorized remains.
    let revoked = revoke(&endpoint, &web, ALL_OUT).await.ok();
    assert_eq!(revoked.texts("return"), ["true"]);
    revoke(&endpoint, &web, &to_db).await.ok();
    assert_eq!(egress_of(&endpoint, &alpha, &web).await, "");
    // And it can be given back.
    authorize(&endpoint, &web, ALL_OUT).await.ok();
    assert_eq!(egress_of(&endpoint, &alpha, &web).await, ALLOW_ALL);
}

#[tokio::test]
async fn egress_requests_are_refused_with_ec2s_errors_and_change_nothing() {
    let (endpoint, alpha, [web]) = with_groups(["web"]).await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        // No GroupId; a name is not enough for egress.
        (ALL_OUT.to_vec(), "MissingParameter"),
        (
            [&[("GroupName", "web")], ALL_OUT].concat(),
            "MissingParameter",
        ),
        (
            [&[("GroupId", "sg-0123456789abcdef0")], ALL_OUT].concat(),
            "InvalidGroup.NotFound",
        ),
        (
            vec![
                ("GroupId", &web),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ],
            "MissingParameter",
        ),
        (
            vec![("GroupId", &web), ("IpPermissions.1.IpProtocol", "tcp")],
            "MissingParameter",
        ),
        (
            vec![
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "22"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/33"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "70000"),
                ("IpPermissions.1.ToPort", "70001"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "gre"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ],
            "InvalidParameterValue",
        ),
        (
            vec![
                ("GroupId", &web),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "22"),
                (
                    "IpPermissions.1.UserIdGroupPairs.1.GroupId",
                    "sg-0123456789abcdef0",
                ),
            ],
            "InvalidGroup.NotFound",
        ),
    ];
    for action in ["AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress"] {
        for (params, code) in &cases {
            let answer = endpoint.call(action, params).await;
            assert_eq!(
                answer.code().as_deref(),
                Some(*code),
                "{action} {params:?}: {}",
                answer.body
            );
            answer.refused(400, code);
        }
    }
    // A dry run checks and changes nothing.
    revoke(&endpoint, &web, &[ALL_OUT, &[("DryRun", "true")]].concat())
        .await
        .refused(412, "DryRunOperation");
    assert_eq!(egress_of(&endpoint, &alpha, &web).await, ALLOW_ALL);
}

#[tokio::test]
async fn another_projects_group_is_not_found_for_egress_as_target_or_destination() {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    let beta = endpoint.keys("beta").await;
    let theirs = create(&endpoint, &alpha, "web").await;
    let ours = create(&endpoint, &beta, "web").await;
    for action in ["AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress"] {
        egress(&endpoint, &beta, action, &theirs, ALL_OUT)
            .await
            .refused(400, "InvalidGroup.NotFound");
        let to_theirs = [
            ("IpPermissions.1.IpProtocol", "-1"),
            (
                "IpPermissions.1.UserIdGroupPairs.1.GroupId",
                theirs.as_str(),
            ),
        ];
        egress(&endpoint, &beta, action, &ours, &to_theirs)
            .await
            .refused(400, "InvalidGroup.NotFound");
    }
    assert_eq!(egress_of(&endpoint, &alpha, &theirs).await, ALLOW_ALL);
    assert_eq!(egress_of(&endpoint, &beta, &ours).await, ALLOW_ALL);
    // Nothing about alpha's group reached the hosts from beta's requests.
    let sent: Vec<SecurityGroupUpdate> = endpoint.compute.updates.lock().expect("lock").clone();
    assert!(
        sent.iter().all(|u| u.group.to_string() != theirs),
        "{sent:?}"
    );
}

#[tokio::test]
async fn compute_hosts_are_sent_the_egress_rules_and_a_destination_groups_members() {
    let (endpoint, _, [web, db]) = with_groups(["web", "db"]).await;
    // An instance in db with an address, as a compute host reports it.
    let ami = endpoint.register_image("disk").await;
    let ran = endpoint
        .run_one(&ami, &[("SecurityGroupId.1", &db)])
        .await
        .ok();
    let instance = ran.texts("instanceId").remove(0);
    let row = endpoint
        .cloud
        .db
        .instance_by_ec2_id(&instance)
        .await
        .expect("read")
        .expect("row");
    endpoint
        .cloud
        .db
        .set_placement(&row.uuid, "10.0.0.5", "nova")
        .await
        .expect("placement");

    authorize(&endpoint, &web, HTTPS_OUT).await.ok();
    let update = endpoint
        .compute
        .update_for(&web, |u| u.egress.len() == 2)
        .await;
    assert_eq!(
        specs(&update.egress),
        [
            spec("-1", None, Some("0.0.0.0/0"), None),
            spec("tcp", Some((443, 443)), Some("10.0.0.0/8"), None),
        ]
    );
    assert!(update.rules.is_empty(), "{update:?}");

    // db as a destination: the hosts learn its members.
    authorize(
        &endpoint,
        &web,
        &[
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "5432"),
            ("IpPermissions.1.ToPort", "5432"),
            ("IpPermissions.1.UserIdGroupPairs.1.GroupId", &db),
        ],
    )
    .await
    .ok();
    let members = endpoint
        .compute
        .update_for(&db, |u| !u.members.is_empty())
        .await;
    assert_eq!(
        members.members,
        ["10.0.0.5".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    let update = endpoint
        .compute
        .update_for(&web, |u| u.egress.len() == 3)
        .await;
    assert_eq!(
        specs(&update.egress)[2],
        spec("tcp", Some((5432, 5432)), None, Some(&db))
    );

    // With every egress rule revoked, the hosts are told nothing may leave.
    for rule in [
        ALL_OUT.to_vec(),
        HTTPS_OUT.to_vec(),
        vec![
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "5432"),
            ("IpPermissions.1.ToPort", "5432"),
            ("IpPermissions.1.UserIdGroupPairs.1.GroupId", db.as_str()),
        ],
    ] {
        revoke(&endpoint, &web, &rule).await.ok();
    }
    let update = endpoint
        .compute
        .update_for(&web, |u| u.egress.is_empty())
        .await;
    assert!(update.rules.is_empty());

    // RunInstances sends the stored egress rules too.
    endpoint
        .run_one(&ami, &[("SecurityGroupId.1", &web)])
        .await
        .ok();
    let runs = endpoint.scheduler.runs(2).await;
    let groups = &runs[1]["instances"][0]["security_groups"];
    assert_eq!(groups[0]["group"], web.as_str(), "{groups}");
    assert_eq!(groups[0]["egress"], serde_json::json!([]), "{groups}");
}
