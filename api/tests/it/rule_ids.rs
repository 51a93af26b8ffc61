//! Security-group rules with their `sgr-` ids: DescribeSecurityGroupRules,
//! the ids Authorize answers with, stable across describes, revocable by
//! id, with their descriptions; another project's rules out of reach.

use crate::endpoint::egress::{create, sections};
use crate::endpoint::{Answer, Endpoint};

/// The rule ids an answer lists, in order.
fn rule_ids(answer: &Answer) -> Vec<String> {
    answer.texts("securityGroupRuleId")
}

const SSH_FROM_OFFICE: &[(&str, &str)] = &[
    ("IpPermissions.1.IpProtocol", "tcp"),
    ("IpPermissions.1.FromPort", "22"),
    ("IpPermissions.1.ToPort", "22"),
    ("IpPermissions.1.IpRanges.1.CidrIp", "203.0.113.0/24"),
    ("IpPermissions.1.IpRanges.1.Description", "office ssh"),
];

async fn authorize(endpoint: &Endpoint, group: &str, rules: &[(&str, &str)]) -> Answer {
    let mut params = vec![("GroupId", group)];
    params.extend_from_slice(rules);
    endpoint
        .call("AuthorizeSecurityGroupIngress", &params)
        .await
        .ok()
}

#[tokio::test]
async fn rules_have_stable_ids_and_are_revoked_by_them() {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    let listed = endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", &web)],
        )
        .await
        .ok();
    // A new group has EC2's default egress rule, with an id.
    let egress = rule_ids(&listed);
    assert_eq!(egress.len(), 1, "{}", listed.body);
    assert!(egress[0].starts_with("sgr-"), "{egress:?}");
    assert_eq!(listed.texts("isEgress"), ["true"]);
    assert_eq!(listed.texts("cidrIpv4"), ["0.0.0.0/0"]);
    assert_eq!(
        listed.texts("groupOwnerId"),
        [stratus_api::ec2::ids::account_id("alpha")]
    );

    let added = authorize(&endpoint, &web, SSH_FROM_OFFICE).await;
    let ssh = rule_ids(&added);
    assert_eq!(ssh.len(), 1, "{}", added.body);
    assert_eq!(added.texts("return"), ["true"]);
    assert_eq!(added.texts("description"), ["office ssh"]);
    assert_eq!(added.texts("fromPort"), ["22"]);

    // Self-referencing rule: the peer shows as referencedGroupInfo.
    let same = authorize(
        &endpoint,
        &web,
        &[
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.ToPort", "80"),
            ("IpPermissions.1.UserIdGroupPairs.1.GroupId", &web),
            ("IpPermissions.1.UserIdGroupPairs.1.Description", "peers"),
        ],
    )
    .await;
    let peer_rule = rule_ids(&same).remove(0);
    let referenced = sections(&same.body, "referencedGroupInfo");
    assert_eq!(referenced.len(), 1, "{}", same.body);
    assert!(referenced[0].contains(&format!("<groupId>{web}</groupId>")));

    // The same ids on every describe, by id or all at once.
    for _ in 0..2 {
        let all = endpoint.call("DescribeSecurityGroupRules", &[]).await.ok();
        let ids = rule_ids(&all);
        for id in [&egress[0], &ssh[0], &peer_rule] {
            assert!(ids.contains(id), "{id} in {ids:?}");
        }
    }
    let one = endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[("SecurityGroupRuleId.1", &ssh[0])],
        )
        .await
        .ok();
    assert_eq!(rule_ids(&one), ssh);
    assert_eq!(one.texts("cidrIpv4"), ["203.0.113.0/24"]);
    let one = endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[
                ("Filter.1.Name", "security-group-rule-id"),
                ("Filter.1.Value.1", &peer_rule),
            ],
        )
        .await
        .ok();
    assert_eq!(rule_ids(&one), std::slice::from_ref(&peer_rule));

    // Descriptions show in DescribeSecurityGroups too.
    let groups = endpoint
        .call("DescribeSecurityGroups", &[("GroupId.1", &web)])
        .await
        .ok();
    let descriptions = groups.texts("description");
    assert!(
        descriptions.contains(&"office ssh".to_owned()),
        "{}",
        groups.body
    );
    assert!(
        descriptions.contains(&"peers".to_owned()),
        "{}",
        groups.body
    );

    // Revoked by id: gone, and a second revoke finds nothing.
    endpoint
        .call(
            "RevokeSecurityGroupIngress",
            &[("GroupId", &web), ("SecurityGroupRuleId.1", &ssh[0])],
        )
        .await
        .ok();
    let all = endpoint.call("DescribeSecurityGroupRules", &[]).await.ok();
    assert!(!rule_ids(&all).contains(&ssh[0]), "{}", all.body);
    assert!(rule_ids(&all).contains(&peer_rule));
    endpoint
        .call(
            "RevokeSecurityGroupIngress",
            &[("GroupId", &web), ("SecurityGroupRuleId.1", &ssh[0])],
        )
        .await
        .refused(400, "InvalidSecurityGroupRuleId.NotFound");
    // An egress rule's id is not an ingress rule.
    endpoint
        .call(
            "RevokeSecurityGroupIngress",
            &[("GroupId", &web), ("SecurityGroupRuleId.1", &egress[0])],
        )
        .await
        .refused(400, "InvalidSecurityGroupRuleId.NotFound");
    endpoint
        .call(
            "RevokeSecurityGroupEgress",
            &[("GroupId", &web), ("SecurityGroupRuleId.1", &egress[0])],
        )
        .await
        .ok();
    endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[("SecurityGroupRuleId.1", &egress[0])],
        )
        .await
        .refused(400, "InvalidSecurityGroupRuleId.NotFound");
}

#[tokio::test]
async fn another_projects_rules_are_out_of_reach() {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    let ssh = rule_ids(&authorize(&endpoint, &web, SSH_FROM_OFFICE).await).remove(0);
    let beta = endpoint.keys("beta").await;
    let theirs = create(&endpoint, &beta, "web").await;
    let listed = endpoint
        .call_as(&beta, "DescribeSecurityGroupRules", &[])
        .await
        .ok();
    assert!(!listed.body.contains(&ssh), "{}", listed.body);
    assert!(!listed.body.contains(&web), "{}", listed.body);
    endpoint
        .call_as(
            &beta,
            "DescribeSecurityGroupRules",
            &[("SecurityGroupRuleId.1", &ssh)],
        )
        .await
        .refused(400, "InvalidSecurityGroupRuleId.NotFound");
    endpoint
        .call_as(
            &beta,
            "RevokeSecurityGroupIngress",
            &[("GroupId", &theirs), ("SecurityGroupRuleId.1", &ssh)],
        )
        .await
        .refused(400, "InvalidSecurityGroupRuleId.NotFound");
    endpoint
        .call_as(
            &beta,
            "RevokeSecurityGroupIngress",
            &[("GroupId", &web), ("SecurityGroupRuleId.1", &ssh)],
        )
        .await
        .refused(400, "InvalidGroup.NotFound");
    let still = endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[("SecurityGroupRuleId.1", &ssh)],
        )
        .await
        .ok();
    assert_eq!(rule_ids(&still), [ssh]);
}

#[tokio::test]
async fn rules_come_a_page_at_a_time() {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    for port in ["1", "2", "3", "4", "5", "6"] {
        authorize(
            &endpoint,
            &web,
            &[
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", port),
                ("IpPermissions.1.ToPort", port),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            ],
        )
        .await;
    }
    // Six ingress, web's egress and default's egress: eight.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..3 {
        let mut params = vec![("MaxResults", "5".to_owned())];
        if let Some(t) = &token {
            params.push(("NextToken", t.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = endpoint
            .call("DescribeSecurityGroupRules", &params)
            .await
            .ok();
        seen.extend(rule_ids(&page));
        token = page.texts("nextToken").pop();
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 8);
    endpoint
        .call("DescribeSecurityGroupRules", &[("MaxResults", "4")])
        .await
        .refused(400, "InvalidParameterValue");
    endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "x")],
        )
        .await
        .refused(400, "InvalidParameterValue");
}
