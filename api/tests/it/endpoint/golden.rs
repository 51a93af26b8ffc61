//! Rendered EC2 responses held against golden files under api/tests/golden:
//! `STRATUS_UPDATE_GOLDEN=1 cargo test -p stratus-api golden` rewrites them;
//! review the diff.

use stratus_test_support::golden;

use super::egress::{ALL_OUT, authorize, revoke, sections, with_groups};

/// `body` with its request id and group ids (numbered by first appearance)
/// made stable.
fn stable(body: &str) -> String {
    let mut out = body.to_owned();
    for request_id in sections(body, "requestId") {
        out = out.replace(&request_id, "REQUEST-ID");
    }
    let mut ids: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("sg-") {
        let id: String = rest[at..].chars().take(20).collect();
        if !ids.contains(&id) {
            ids.push(id);
        }
        rest = &rest[at + 3..];
    }
    for (n, id) in ids.iter().enumerate() {
        out = out.replace(id.as_str(), &format!("sg-{:017}", n + 1));
    }
    out.replace("><", ">\n<")
}

#[tokio::test]
async fn describe_security_groups_renders_both_rule_lists_as_its_golden_file() {
    let (endpoint, _, [web, db]) = with_groups(["web", "db"]).await;
    endpoint
        .call(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", web.as_str()),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "22"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
                ("IpPermissions.2.IpProtocol", "icmp"),
                ("IpPermissions.2.FromPort", "-1"),
                ("IpPermissions.2.ToPort", "-1"),
                ("IpPermissions.2.UserIdGroupPairs.1.GroupId", db.as_str()),
            ],
        )
        .await
        .ok();
    authorize(
        &endpoint,
        &web,
        &[
            ("IpPermissions.1.IpProtocol", "udp"),
            ("IpPermissions.1.FromPort", "53"),
            ("IpPermissions.1.ToPort", "53"),
            ("IpPermissions.1.UserIdGroupPairs.1.GroupId", db.as_str()),
        ],
    )
    .await
    .ok();
    revoke(&endpoint, &db, ALL_OUT).await.ok();
    let described = endpoint
        .call(
            "DescribeSecurityGroups",
            &[("GroupId.1", web.as_str()), ("GroupId.2", db.as_str())],
        )
        .await
        .ok();
    golden!("describe-security-groups.xml", &stable(&described.body));
}
