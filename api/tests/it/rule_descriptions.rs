//! UpdateSecurityGroupRuleDescriptionsIngress and …Egress: a rule's
//! description set, replaced and removed, the rule named by what it admits
//! (`IpPermissions`) or by its `sgr-` id, shown by both describes; EC2's
//! errors for unknown groups and rules, another project's included.

use crate::endpoint::egress::create;
use crate::endpoint::{Answer, Endpoint};

/// SSH from 203.0.113.0/24 described as `description` (none: no
/// description given).
fn ssh(description: Option<&str>) -> Vec<(&'static str, &str)> {
    let mut rule = vec![
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "203.0.113.0/24"),
    ];
    rule.extend(description.map(|d| ("IpPermissions.1.IpRanges.1.Description", d)));
    rule
}

/// `action` on `group` with `params` as alpha.
async fn update(endpoint: &Endpoint, action: &str, group: &str, params: &[(&str, &str)]) -> Answer {
    let mut all = vec![("GroupId", group)];
    all.extend_from_slice(params);
    endpoint.call(action, &all).await
}

const INGRESS: &str = "UpdateSecurityGroupRuleDescriptionsIngress";
const EGRESS: &str = "UpdateSecurityGroupRuleDescriptionsEgress";

/// The group's rules: (id, whether egress, description).
async fn rules(endpoint: &Endpoint, group: &str) -> Vec<(String, bool, Option<String>)> {
    let listed = endpoint
        .call(
            "DescribeSecurityGroupRules",
            &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", group)],
        )
        .await
        .ok();
    crate::endpoint::egress::sections(&listed.body, "item")
        .iter()
        .filter(|item| item.contains("<securityGroupRuleId>"))
        .map(|item| {
            let field = |name: &str| {
                crate::endpoint::egress::sections(item, name)
                    .into_iter()
                    .next()
            };
            (
                field("securityGroupRuleId").expect("an id"),
                field("isEgress").as_deref() == Some("true"),
                field("description"),
            )
        })
        .collect()
}

/// An endpoint where alpha's group `web` lets in SSH described "office
/// ssh": (endpoint, group, its egress rule's id, its ingress rule's id).
async fn web_with_ssh() -> (Endpoint, String, String, String) {
    let endpoint = Endpoint::start().await;
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    update(
        &endpoint,
        "AuthorizeSecurityGroupIngress",
        &web,
        &ssh(Some("office ssh")),
    )
    .await
    .ok();
    let listed = rules(&endpoint, &web).await;
    let id = |egress: bool| {
        let rule = listed.iter().find(|r| r.1 == egress).expect("a rule");
        rule.0.clone()
    };
    let (egress, ingress) = (id(true), id(false));
    (endpoint, web, egress, ingress)
}

#[tokio::test]
async fn descriptions_change_by_permission_and_by_rule_id() {
    let (endpoint, web, egress, ingress) = web_with_ssh().await;

    // By what the rule admits, by group id and by group name.
    let answer = update(&endpoint, INGRESS, &web, &ssh(Some("vpn ssh")))
        .await
        .ok();
    assert_eq!(answer.texts("return"), ["true"]);
    assert!(rules(&endpoint, &web).await.contains(&(
        ingress.clone(),
        false,
        Some("vpn ssh".into())
    )));
    let mut by_name = vec![("GroupName", "web")];
    by_name.extend(ssh(Some("bastion ssh")));
    endpoint.call(INGRESS, &by_name).await.ok();
    let groups = endpoint
        .call("DescribeSecurityGroups", &[("GroupId.1", &web)])
        .await
        .ok();
    assert_eq!(
        groups.texts("description"),
        ["bastion ssh"],
        "{}",
        groups.body
    );

    // By id, in its own direction.
    update(
        &endpoint,
        EGRESS,
        &web,
        &[
            (
                "SecurityGroupRuleDescription.1.SecurityGroupRuleId",
                &egress,
            ),
            ("SecurityGroupRuleDescription.1.Description", "all out"),
        ],
    )
    .await
    .ok();
    let now = rules(&endpoint, &web).await;
    assert!(
        now.contains(&(egress.clone(), true, Some("all out".into()))),
        "{now:?}"
    );
    assert!(
        now.contains(&(ingress.clone(), false, Some("bastion ssh".into()))),
        "{now:?}"
    );

    // Given without a description, a rule loses the one it had.
    update(&endpoint, INGRESS, &web, &ssh(None)).await.ok();
    update(
        &endpoint,
        EGRESS,
        &web,
        &[(
            "SecurityGroupRuleDescription.1.SecurityGroupRuleId",
            &egress,
        )],
    )
    .await
    .ok();
    let now = rules(&endpoint, &web).await;
    assert!(now.iter().all(|r| r.2.is_none()), "{now:?}");

    // A dry run changes nothing.
    let mut dry = ssh(Some("dry"));
    dry.push(("DryRun", "true"));
    update(&endpoint, INGRESS, &web, &dry)
        .await
        .refused(412, "DryRunOperation");
    assert!(rules(&endpoint, &web).await.iter().all(|r| r.2.is_none()));
}

#[tokio::test]
async fn unknown_groups_and_rules_are_refused_as_ec2_does() {
    let (endpoint, web, egress, ingress) = web_with_ssh().await;
    let listed = rules(&endpoint, &web).await;
    let by_id = |id: &str| {
        vec![
            (
                "SecurityGroupRuleDescription.1.SecurityGroupRuleId",
                id.to_owned(),
            ),
            ("SecurityGroupRuleDescription.1.Description", "x".to_owned()),
        ]
    };
    let port_23: Vec<(&'static str, &str)> = ssh(Some("telnet"))
        .into_iter()
        .map(|(k, v)| (k, if v == "22" { "23" } else { v }))
        .collect();
    let cases: Vec<(&str, String, Params, &str)> = vec![
        (
            INGRESS,
            "sg-00000000000000001".into(),
            owned(&ssh(Some("x"))),
            "InvalidGroup.NotFound",
        ),
        (
            INGRESS,
            web.clone(),
            owned(&port_23),
            "InvalidPermission.NotFound",
        ),
        // The rule exists, but as ingress.
        (
            EGRESS,
            web.clone(),
            owned(&ssh(Some("x"))),
            "InvalidPermission.NotFound",
        ),
        (
            INGRESS,
            web.clone(),
            by_id("sgr-00000000000000001"),
            "InvalidSecurityGroupRuleId.NotFound",
        ),
        (
            INGRESS,
            web.clone(),
            by_id(&egress),
            "InvalidSecurityGroupRuleId.NotFound",
        ),
        (
            EGRESS,
            web.clone(),
            by_id(&ingress),
            "InvalidSecurityGroupRuleId.NotFound",
        ),
        (
            INGRESS,
            web.clone(),
            by_id("sgr-zz"),
            "InvalidSecurityGroupRuleId.Malformed",
        ),
        (INGRESS, web.clone(), vec![], "MissingParameter"),
        (
            INGRESS,
            web.clone(),
            owned(&ssh(Some(&"d".repeat(256)))),
            "InvalidParameterValue",
        ),
    ];
    for (action, group, params, code) in cases {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = update(&endpoint, action, &group, &params).await;
        assert_eq!(
            answer.code().as_deref(),
            Some(code),
            "{action} {params:?}: {}",
            answer.body
        );
    }

    // Another project reaches neither alpha's group nor its rules.
    let beta = endpoint.keys("beta").await;
    let theirs = create(&endpoint, &beta, "web").await;
    let mut on_alphas = vec![("GroupId", web.as_str())];
    on_alphas.extend(ssh(Some("mine")));
    endpoint
        .call_as(&beta, INGRESS, &on_alphas)
        .await
        .refused(400, "InvalidGroup.NotFound");
    endpoint
        .call_as(
            &beta,
            INGRESS,
            &[
                ("GroupId", &theirs),
                (
                    "SecurityGroupRuleDescription.1.SecurityGroupRuleId",
                    &ingress,
                ),
                ("SecurityGroupRuleDescription.1.Description", "mine"),
            ],
        )
        .await
        .refused(400, "InvalidSecurityGroupRuleId.NotFound");
    // Nothing changed.
    assert_eq!(rules(&endpoint, &web).await, listed);
}

/// Request parameters, owned.
type Params = Vec<(&'static str, String)>;

fn owned(params: &[(&'static str, &str)]) -> Params {
    params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
