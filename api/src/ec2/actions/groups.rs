//! Security groups: create, delete, describe, authorize and revoke ingress
//! and egress. The rules' parsing and rendering live in `permissions.rs`,
//! what a change does in `app::security_groups`.

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::ids::account_id;
use super::super::params::shown;
use super::super::{Ctx, all_found, ids};
use super::permissions;
use crate::app::security_groups::{self as app, Change, GroupRef, RuleChange};
use crate::db::groups::{Direction, GroupRow, InUse};

pub use crate::app::security_groups::DEFAULT_GROUP;

/// The project's groups, with `default` made on first use (every project has one).
pub async fn project_groups(cx: &Ctx<'_>) -> Result<Vec<GroupRow>, Ec2Error> {
    Ok(app::project_groups(&cx.cloud.db, &cx.caller.project_id).await?)
}

fn not_found(what: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidGroup.NotFound",
        format!("The security group '{}' does not exist", shown(what)),
    )
}

/// The group a request names by `GroupId` or `GroupName`.
async fn named_group(cx: &Ctx<'_>) -> Result<GroupRow, Ec2Error> {
    let wanted = permissions::target_group(cx.params, true)?;
    let groups = project_groups(cx).await?;
    Ok(app::find(&groups, &wanted)?.clone())
}

/// The groups named in a list of ids and a list of names (RunInstances).
pub async fn resolve(
    cx: &Ctx<'_>,
    ids: &[String],
    names: &[String],
) -> Result<Vec<GroupRow>, Ec2Error> {
    let groups = project_groups(cx).await?;
    let wanted = ids
        .iter()
        .map(|id| GroupRef::Id(id.clone()))
        .chain(names.iter().map(|name| GroupRef::Name(name.clone())));
    let mut chosen: Vec<GroupRow> = wanted
        .map(|w| app::find(&groups, &w).cloned())
        .collect::<Result<_, _>>()?;
    if chosen.is_empty()
        && let Some(default) = groups.iter().find(|g| g.name == DEFAULT_GROUP)
    {
        chosen.push(default.clone());
    }
    chosen.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    chosen.dedup_by(|a, b| a.group_id == b.group_id);
    Ok(chosen)
}

/// Refuses rules naming a group of another account (`UserId` in a group
/// pair, or the flat form's `SourceSecurityGroupOwnerId`): groups are the
/// project's own. The caller's account id is accepted (what tools that ask
/// STS send), and so is the project id owners were shown before.
fn same_account_peers(cx: &Ctx<'_>) -> Result<(), Ec2Error> {
    let project = &cx.caller.project_id;
    let account = account_id(project);
    let mut owners: Vec<String> = Vec::new();
    owners.extend(
        cx.params
            .get("SourceSecurityGroupOwnerId")
            .map(str::to_owned),
    );
    for permission in cx.params.structs("IpPermissions")? {
        for list in ["UserIdGroupPairs", "Groups"] {
            for pair in permission.structs(list)? {
                owners.extend(pair.get("UserId").map(str::to_owned));
            }
        }
    }
    match owners.iter().find(|o| **o != account && *o != project) {
        Some(other) => Err(Ec2Error::client(
            "InvalidGroup.NotFound",
            format!(
                "Rules can name only this account's ({account}) security groups, not those of '{}'.",
                shown(other)
            ),
        )),
        None => Ok(()),
    }
}

/// Authorize or Revoke, ingress or egress: the rules a request gives,
/// changed in the group it names (egress only by `GroupId`, as EC2 has it).
async fn change_rules(
    cx: &Ctx<'_>,
    direction: Direction,
    change: Change,
) -> Result<String, Ec2Error> {
    same_account_peers(cx)?;
    let rule_ids = match change {
        Change::Revoke => cx.params.list("SecurityGroupRuleId")?,
        Change::Authorize => vec![],
    };
    // Revoking by id alone: no rule is stated in the request.
    let stated = rule_ids.is_empty()
        || cx.params.get("IpProtocol").is_some()
        || !cx.params.structs("IpPermissions")?.is_empty();
    let request = RuleChange {
        group: permissions::target_group(cx.params, direction == Direction::Ingress)?,
        direction,
        change,
        rules: if stated {
            permissions::requested(cx.params)?
        } else {
            vec![]
        },
        rule_ids,
        dry_run: cx.params.flag("DryRun")?,
    };
    let project = &cx.caller.project_id;
    let added = app::change_rules(cx.cloud, project, &cx.rpc_context(), request).await?;
    let mut x = cx.response();
    x.value("return", true);
    if change == Change::Authorize {
        super::rules::render_rule_set(&mut x, &added, &ids::account_id(project));
    }
    Ok(cx.finish(x))
}

/// AuthorizeSecurityGroupIngress.
pub async fn authorize_ingress(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    change_rules(cx, Direction::Ingress, Change::Authorize).await
}

/// RevokeSecurityGroupIngress.
pub async fn revoke_ingress(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    change_rules(cx, Direction::Ingress, Change::Revoke).await
}

/// AuthorizeSecurityGroupEgress.
pub async fn authorize_egress(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    change_rules(cx, Direction::Egress, Change::Authorize).await
}

/// RevokeSecurityGroupEgress.
pub async fn revoke_egress(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    change_rules(cx, Direction::Egress, Change::Revoke).await
}

/// CreateSecurityGroup.
pub async fn create_security_group(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let name = cx.params.required("GroupName")?;
    let description = cx.params.required("GroupDescription")?;
    if name.len() > 255 || name.starts_with("sg-") || name.chars().any(char::is_control) {
        return Err(Ec2Error::invalid(format!(
            "Invalid security group name '{}': up to 255 printable characters, not starting with sg-.",
            shown(name)
        )));
    }
    if description.len() > 255 || description.chars().any(char::is_control) {
        return Err(Ec2Error::invalid(
            "The group description must be up to 255 printable characters.",
        ));
    }
    // Groups belong to the project's one VPC: naming it is fine, any other
    // is not found (another project's included).
    if let Some(vpc_id) = cx.params.get("VpcId").filter(|v| !v.is_empty())
        && vpc_id != ids::default_vpc_id(&cx.caller.project_id)
    {
        return Err(super::vpcs::vpc_not_found(vpc_id));
    }
    let groups = project_groups(cx).await?;
    if groups.len() as u64 >= cx.cloud.config.quotas.security_groups {
        return Err(Ec2Error::client(
            "SecurityGroupLimitExceeded",
            format!(
                "You have reached the limit of {} security groups.",
                cx.cloud.config.quotas.security_groups
            ),
        ));
    }
    cx.dry_run()?;
    let group = app::new_group(&cx.caller.project_id, name, description);
    if let Err(e) = cx.cloud.db.insert_group(&group).await {
        if e.is_unique_violation() {
            return Err(Ec2Error::client(
                "InvalidGroup.Duplicate",
                format!("The security group '{}' already exists", shown(name)),
            ));
        }
        return Err(e.into());
    }
    let mut x = cx.response();
    x.text("groupId", &group.group_id);
    Ok(cx.finish(x))
}

/// DeleteSecurityGroup: refused for `default` and while in use.
pub async fn delete_security_group(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let group = named_group(cx).await?;
    if group.name == DEFAULT_GROUP {
        return Err(Ec2Error::client(
            "CannotDelete",
            format!(
                "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                group.group_id
            ),
        ));
    }
    match cx.cloud.db.group_in_use(&group.group_id).await? {
        Some(InUse::Instances(instances)) => {
            return Err(Ec2Error::client(
                "InvalidGroup.InUse",
                format!(
                    "There are active instances using security group '{}': {}",
                    group.name,
                    instances.join(", ")
                ),
            ));
        }
        Some(InUse::Referenced(by)) => {
            return Err(Ec2Error::client(
                "DependencyViolation",
                format!("resource {} has a dependent object: {by}", group.group_id),
            ));
        }
        None => {}
    }
    cx.dry_run()?;
    cx.cloud.db.delete_group(&group.group_id).await?;
    cx.cloud.db.drop_tags(&group.group_id).await?;
    Ok(cx.ok())
}

/// DescribeSecurityGroups.
pub async fn describe_security_groups(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ids = cx.params.list("GroupId")?;
    let names = cx.params.list("GroupName")?;
    let wanted = filters::parse(
        cx.params,
        &[
            "group-name",
            "group-id",
            "description",
            "owner-id",
            "vpc-id",
        ],
    )?;
    let mut groups = project_groups(cx).await?;
    all_found(
        &ids,
        |id| groups.iter().any(|g| &g.group_id == id),
        not_found,
    )?;
    all_found(&names, |n| groups.iter().any(|g| &g.name == n), not_found)?;
    let tags = cx.cloud.db.tags(&cx.caller.project_id, None).await?;
    let vpc_id = ids::default_vpc_id(&cx.caller.project_id);
    // Rules name groups the filters may leave out: their names come from all.
    let all = groups.clone();
    groups.retain(|g| {
        (ids.is_empty() && names.is_empty() || ids.contains(&g.group_id) || names.contains(&g.name))
            && {
                let own = super::tags::of(&tags, &g.group_id);
                filters::matches(&wanted, &own, |n| match n {
                    "group-name" => vec![g.name.clone()],
                    "group-id" => vec![g.group_id.clone()],
                    "description" => vec![g.description.clone()],
                    "owner-id" => vec![account_id(&g.project_id)],
                    "vpc-id" => vec![vpc_id.clone()],
                    _ => vec![],
                })
            }
    });
    let owner = account_id(&cx.caller.project_id);
    let mut x = cx.response();
    x.list("securityGroupInfo", &groups, |x, g| {
        x.text("ownerId", &owner)
            .text("groupId", &g.group_id)
            .text("groupName", &g.name)
            .text("groupDescription", &g.description)
            .text("vpcId", &vpc_id);
        permissions::render(x, "ipPermissions", &g.rules, &all, &owner);
        permissions::render(x, "ipPermissionsEgress", &g.egress, &all, &owner);
        let own = super::tags::of(&tags, &g.group_id);
        if !own.is_empty() {
            x.list("tagSet", &own, |x, (k, v)| {
                x.text("key", k).text("value", v);
            });
        }
    });
    Ok(cx.finish(x))
}
