//! Security-group rules by their `sgr-` ids: DescribeSecurityGroupRules,
//! UpdateSecurityGroupRuleDescriptionsIngress and …Egress, and the
//! `securityGroupRuleSet` items Authorize answers with.

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::xml::Xml;
use super::super::{Ctx, all_found, ids};
use super::permissions;
use crate::app::security_groups::{self as app, DescriptionUpdate};
use crate::db::groups::{Direction, StoredRule};

/// The filters DescribeSecurityGroupRules knows (and `tag:…`).
const FILTERS: &[&str] = &["group-id", "security-group-rule-id"];

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidSecurityGroupRuleId.NotFound",
        format!(
            "The security group rule ID '{}' does not exist",
            super::super::params::shown(id)
        ),
    )
}

/// One rule as botocore's `SecurityGroupRule`; `owner` is the account id.
pub fn render_rule(x: &mut Xml, r: &StoredRule, owner: &str, tags: &[(String, String)]) {
    let rule = &r.rule;
    x.text("securityGroupRuleId", &r.rule_id)
        .text("groupId", &r.group_id)
        .text("groupOwnerId", owner)
        .value("isEgress", r.direction == Direction::Egress)
        .text("ipProtocol", &rule.protocol);
    // All protocols: EC2 shows -1 for both ports; ICMP: -1 for "any".
    let (from, to) = match rule.protocol.as_str() {
        "-1" => (-1, -1),
        "icmp" => (rule.from_port.unwrap_or(-1), rule.to_port.unwrap_or(-1)),
        _ => (rule.from_port.unwrap_or(0), rule.to_port.unwrap_or(65535)),
    };
    x.value("fromPort", from).value("toPort", to);
    if let Some(cidr) = &rule.cidr {
        x.text("cidrIpv4", cidr);
    }
    if let Some(peer) = &rule.source_group_id {
        x.open("referencedGroupInfo")
            .text("groupId", peer)
            .text("userId", owner)
            .close("referencedGroupInfo");
    }
    if let Some(d) = &rule.description {
        x.text("description", d);
    }
    x.list("tagSet", tags, |x, (k, v)| {
        x.text("key", k).text("value", v);
    });
}

/// `securityGroupRuleSet` listing `rules` (untagged: just added).
pub fn render_rule_set(x: &mut Xml, rules: &[StoredRule], owner: &str) {
    x.list("securityGroupRuleSet", rules, |x, r| {
        render_rule(x, r, owner, &[]);
    });
}

/// DescribeSecurityGroupRules: the caller's rules by id and filters, a page
/// at a time (in id order).
pub async fn describe_security_group_rules(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let wanted_ids = cx.params.list("SecurityGroupRuleId")?;
    let wanted = filters::parse(cx.params, FILTERS)?;
    // The default group is made on first use, as DescribeSecurityGroups does.
    super::groups::project_groups(cx).await?;
    let project = &cx.caller.project_id;
    let mut rules = cx.cloud.db.rules(project).await?;
    all_found(
        &wanted_ids,
        |id| rules.iter().any(|r| &r.rule_id == id),
        not_found,
    )?;
    cx.dry_run()?;
    let tags = cx.cloud.db.tags(project, None).await?;
    rules.retain(|r| {
        (wanted_ids.is_empty() || wanted_ids.contains(&r.rule_id))
            && filters::matches(&wanted, &super::tags::of(&tags, &r.rule_id), |n| match n {
                "group-id" => vec![r.group_id.clone()],
                "security-group-rule-id" => vec![r.rule_id.clone()],
                _ => vec![],
            })
    });
    rules.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
    let (rules, next) = super::instances::page(cx, rules, |r| r.rule_id.as_str())?;
    let owner = ids::account_id(project);
    let mut x = cx.response();
    x.list("securityGroupRuleSet", &rules, |x, r| {
        render_rule(x, r, &owner, &super::tags::of(&tags, &r.rule_id));
    });
    if let Some(next) = next {
        x.text("nextToken", &next);
    }
    Ok(cx.finish(x))
}

/// UpdateSecurityGroupRuleDescriptionsIngress / …Egress: new descriptions
/// for rules of the group named (by id or, in the default VPC, by name),
/// each rule named by what it admits (`IpPermissions`, the description
/// beside its range or group) or by id (`SecurityGroupRuleDescription.N`).
/// A rule given without a description loses the one it had, as on EC2.
pub async fn update_descriptions(cx: &Ctx<'_>, direction: Direction) -> Result<String, Ec2Error> {
    let by_id = cx
        .params
        .structs("SecurityGroupRuleDescription")?
        .iter()
        .map(|d| {
            let id = d.required("SecurityGroupRuleId")?;
            if !ids::is_id("sgr", id) {
                return Err(Ec2Error::client(
                    "InvalidSecurityGroupRuleId.Malformed",
                    format!("Invalid id: \"{}\"", super::super::params::shown(id)),
                ));
            }
            Ok((id.to_owned(), permissions::description(d)?))
        })
        .collect::<Result<Vec<_>, Ec2Error>>()?;
    let rules = if cx.params.structs("IpPermissions")?.is_empty() {
        vec![]
    } else {
        permissions::requested(cx.params)?
    };
    if rules.is_empty() && by_id.is_empty() {
        return Err(Ec2Error::missing(
            "IpPermissions or SecurityGroupRuleDescription",
        ));
    }
    let request = DescriptionUpdate {
        group: permissions::target_group(cx.params, true)?,
        direction,
        rules,
        by_id,
        dry_run: cx.params.flag("DryRun")?,
    };
    app::update_descriptions(&cx.cloud.db, &cx.caller.project_id, request).await?;
    Ok(cx.ok())
}
