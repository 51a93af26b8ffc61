//! Security groups: create, delete, describe, authorize and revoke ingress.
//! Every change reaches the compute hosts' iptables through the
//! `refresh_security_group` fanout.

use stratus_rpc::wire::firewall::{IngressRule, RuleSpec, SecurityGroupUpdate};
use tracing::warn;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::{Params, shown};
use super::super::{Ctx, ids};
use crate::db::groups::{GroupRow, InUse, RuleRow};

/// The name of every project's own group.
pub const DEFAULT_GROUP: &str = "default";

/// The project's groups, with `default` made on first use (every project has one).
pub async fn project_groups(cx: &Ctx<'_>) -> Result<Vec<GroupRow>, Ec2Error> {
    let groups = cx.cloud.db.groups(&cx.caller.project_id).await?;
    if groups.iter().any(|g| g.name == DEFAULT_GROUP) {
        return Ok(groups);
    }
    let default = GroupRow {
        group_id: ids::new_id("sg"),
        project_id: cx.caller.project_id.clone(),
        name: DEFAULT_GROUP.into(),
        description: "default group".into(),
        rules: vec![],
    };
    if let Err(e) = cx.cloud.db.insert_group(&default).await {
        // Another request made it first.
        if !e.is_unique_violation() {
            return Err(e.into());
        }
    }
    Ok(cx.cloud.db.groups(&cx.caller.project_id).await?)
}

fn not_found(what: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidGroup.NotFound",
        format!("The security group '{}' does not exist", shown(what)),
    )
}

/// The group a request names by `GroupId` or `GroupName`.
async fn named_group(cx: &Ctx<'_>) -> Result<GroupRow, Ec2Error> {
    let groups = project_groups(cx).await?;
    let found = match (cx.params.get("GroupId"), cx.params.get("GroupName")) {
        (Some(id), _) if !id.is_empty() => groups
            .into_iter()
            .find(|g| g.group_id == id)
            .ok_or_else(|| not_found(id)),
        (_, Some(name)) if !name.is_empty() => groups
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| not_found(name)),
        _ => Err(Ec2Error::missing("GroupId")),
    }?;
    Ok(found)
}

/// The groups named in a list of ids and a list of names (RunInstances).
pub async fn resolve(
    cx: &Ctx<'_>,
    ids: &[String],
    names: &[String],
) -> Result<Vec<GroupRow>, Ec2Error> {
    let groups = project_groups(cx).await?;
    let mut chosen: Vec<GroupRow> = Vec::new();
    for id in ids {
        let g = groups
            .iter()
            .find(|g| &g.group_id == id)
            .ok_or_else(|| not_found(id))?;
        chosen.push(g.clone());
    }
    for name in names {
        let g = groups
            .iter()
            .find(|g| &g.name == name)
            .ok_or_else(|| not_found(name))?;
        chosen.push(g.clone());
    }
    if chosen.is_empty()
        && let Some(default) = groups.iter().find(|g| g.name == DEFAULT_GROUP)
    {
        chosen.push(default.clone());
    }
    chosen.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    chosen.dedup_by(|a, b| a.group_id == b.group_id);
    Ok(chosen)
}

/// A group as the compute hosts need it: validated rules and members' addresses.
pub async fn group_update(
    cx_db: &crate::db::Db,
    g: &GroupRow,
) -> Result<SecurityGroupUpdate, Ec2Error> {
    let group = g
        .group_id
        .parse()
        .map_err(|e| Ec2Error::internal(format!("stored group id: {e}")))?;
    let rules = g
        .rules
        .iter()
        .filter_map(|r| IngressRule::try_from(spec(r)).ok())
        .collect();
    // Members matter only to rules naming the group as their source; the
    // list grows with the group, and RunInstances sends it every time.
    let members = if cx_db.is_source(&g.group_id).await? {
        cx_db
            .group_members(&g.group_id)
            .await?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    Ok(SecurityGroupUpdate {
        group,
        rules,
        // Placeholder until egress rules are stored: EC2's default.
        egress: vec![IngressRule::allow_all()],
        members,
    })
}

/// Tells every compute host the group changed.
pub async fn fan_out(cx: &Ctx<'_>, g: &GroupRow) -> Result<(), Ec2Error> {
    let update = group_update(&cx.cloud.db, g).await?;
    if let Err(e) = cx
        .cloud
        .compute
        .refresh_security_group(&cx.rpc_context(), &update)
        .await
    {
        warn!(group = %g.group_id, error = %e, "could not tell the compute hosts about a group change");
        return Err(Ec2Error::unavailable(
            "The rule was saved but the compute hosts could not be told; retry the request.",
        ));
    }
    Ok(())
}

fn spec(r: &RuleRow) -> RuleSpec {
    RuleSpec {
        protocol: r.protocol.clone(),
        from_port: r.from_port.and_then(|p| i32::try_from(p).ok()),
        to_port: r.to_port.and_then(|p| i32::try_from(p).ok()),
        cidr: r.cidr.clone(),
        source_group: r.source_group_id.clone(),
    }
}

/// The rules a request gives: `IpPermissions.N…` or the legacy flat form.
async fn requested_rules(cx: &Ctx<'_>) -> Result<Vec<RuleRow>, Ec2Error> {
    let groups = project_groups(cx).await?;
    let source = |pair: &Params| -> Result<String, Ec2Error> {
        match (pair.get("GroupId"), pair.get("GroupName")) {
            (Some(id), _) if !id.is_empty() => groups
                .iter()
                .find(|g| g.group_id == id)
                .map(|g| g.group_id.clone())
                .ok_or_else(|| not_found(id)),
            (_, Some(name)) if !name.is_empty() => groups
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.group_id.clone())
                .ok_or_else(|| not_found(name)),
            _ => Err(Ec2Error::missing("UserIdGroupPairs.GroupId")),
        }
    };
    let mut specs: Vec<RuleSpec> = Vec::new();
    let port = |p: &Params, name: &str| -> Result<Option<i32>, Ec2Error> {
        p.int(name)?
            .map(|v| {
                i32::try_from(v)
                    .map_err(|_| Ec2Error::invalid(format!("{name} {v} is out of range")))
            })
            .transpose()
    };
    let permissions = cx.params.structs("IpPermissions")?;
    if permissions.is_empty() {
        // The flat form older tools send.
        let protocol = cx.params.required("IpProtocol")?.to_owned();
        let (from_port, to_port) = (port(cx.params, "FromPort")?, port(cx.params, "ToPort")?);
        let cidr = cx.params.get("CidrIp").map(str::to_owned);
        let source_group = match cx.params.get("SourceSecurityGroupName") {
            Some(name) => Some(source(&Params::parse(
                format!("GroupName={}", form(name)).as_bytes(),
            ))?),
            None => None,
        };
        specs.push(RuleSpec {
            protocol,
            from_port,
            to_port,
            cidr: if source_group.is_some() {
                None
            } else {
                cidr.or(Some("0.0.0.0/0".into()))
            },
            source_group,
        });
    }
    for p in permissions {
        let protocol = p.required("IpProtocol")?.to_owned();
        let (from_port, to_port) = (port(&p, "FromPort")?, port(&p, "ToPort")?);
        if !p.structs("Ipv6Ranges")?.is_empty() {
            return Err(Ec2Error::invalid("IPv6 rules are not supported."));
        }
        let mut any = false;
        for range in p.structs("IpRanges")? {
            any = true;
            specs.push(RuleSpec {
                protocol: protocol.clone(),
                from_port,
                to_port,
                cidr: Some(range.required("CidrIp")?.to_owned()),
                source_group: None,
            });
        }
        for pair in p
            .structs("UserIdGroupPairs")?
            .iter()
            .chain(p.structs("Groups")?.iter())
        {
            any = true;
            specs.push(RuleSpec {
                protocol: protocol.clone(),
                from_port,
                to_port,
                cidr: None,
                source_group: Some(source(pair)?),
            });
        }
        if !any {
            return Err(Ec2Error::missing("IpPermissions.IpRanges"));
        }
    }
    specs
        .into_iter()
        .map(|s| {
            let rule = IngressRule::try_from(s).map_err(|e| Ec2Error::invalid(e.to_string()))?;
            let s = RuleSpec::from(rule);
            Ok(RuleRow {
                protocol: s.protocol,
                from_port: s.from_port.map(i64::from),
                to_port: s.to_port.map(i64::from),
                cidr: s.cidr,
                source_group_id: s.source_group,
            })
        })
        .collect()
}

fn form(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// AuthorizeSecurityGroupIngress.
pub async fn authorize_ingress(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let group = named_group(cx).await?;
    let rules = requested_rules(cx).await?;
    cx.dry_run()?;
    if !cx.cloud.db.add_rules(&group.group_id, &rules).await? {
        return Err(Ec2Error::client(
            "InvalidPermission.Duplicate",
            format!(
                "The specified rule already exists in security group {}",
                group.group_id
            ),
        ));
    }
    let group = named_group(cx).await?;
    fan_out(cx, &group).await?;
    // Every host needs the members of a group a rule now names as source,
    // also hosts that run none of them.
    let sources: Vec<&String> = rules
        .iter()
        .filter_map(|r| r.source_group_id.as_ref())
        .collect();
    if !sources.is_empty() {
        for source in project_groups(cx)
            .await?
            .iter()
            .filter(|g| sources.contains(&&g.group_id) && g.group_id != group.group_id)
        {
            fan_out(cx, source).await?;
        }
    }
    Ok(cx.ok())
}

/// RevokeSecurityGroupIngress.
pub async fn revoke_ingress(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let group = named_group(cx).await?;
    let rules = requested_rules(cx).await?;
    cx.dry_run()?;
    if cx.cloud.db.remove_rules(&group.group_id, &rules).await? == 0 {
        return Err(Ec2Error::client(
            "InvalidPermission.NotFound",
            "The specified rule does not exist in this security group.",
        ));
    }
    let group = named_group(cx).await?;
    fan_out(cx, &group).await?;
    Ok(cx.ok())
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
    let group = GroupRow {
        group_id: ids::new_id("sg"),
        project_id: cx.caller.project_id.clone(),
        name: name.to_owned(),
        description: description.to_owned(),
        rules: vec![],
    };
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
        &["group-name", "group-id", "description", "owner-id"],
    )?;
    let mut groups = project_groups(cx).await?;
    for id in &ids {
        if !groups.iter().any(|g| &g.group_id == id) {
            return Err(Ec2Error::client(
                "InvalidGroup.NotFound",
                format!("The security group '{}' does not exist", shown(id)),
            ));
        }
    }
    for name in &names {
        if !groups.iter().any(|g| &g.name == name) {
            return Err(not_found(name));
        }
    }
    let tags = cx.cloud.db.tags(&cx.caller.project_id, None).await?;
    groups.retain(|g| {
        (ids.is_empty() && names.is_empty() || ids.contains(&g.group_id) || names.contains(&g.name))
            && {
                let own = super::tags::of(&tags, &g.group_id);
                filters::matches(&wanted, &own, |n| match n {
                    "group-name" => vec![g.name.clone()],
                    "group-id" => vec![g.group_id.clone()],
                    "description" => vec![g.description.clone()],
                    "owner-id" => vec![g.project_id.clone()],
                    _ => vec![],
                })
            }
    });
    let owner = cx.caller.project_id.clone();
    let mut x = cx.response();
    x.list("securityGroupInfo", &groups, |x, g| {
        x.text("ownerId", &owner)
            .text("groupId", &g.group_id)
            .text("groupName", &g.name)
            .text("groupDescription", &g.description);
        x.list("ipPermissions", &g.rules, |x, r| {
            x.text("ipProtocol", &r.protocol);
            if r.protocol != "-1" {
                x.value(
                    "fromPort",
                    r.from_port
                        .unwrap_or(if r.protocol == "icmp" { -1 } else { 0 }),
                )
                .value(
                    "toPort",
                    r.to_port
                        .unwrap_or(if r.protocol == "icmp" { -1 } else { 65535 }),
                );
            }
            let pairs: Vec<(String, String)> = r
                .source_group_id
                .iter()
                .map(|id| {
                    let name = groups
                        .iter()
                        .find(|g| &g.group_id == id)
                        .map(|g| g.name.clone())
                        .unwrap_or_default();
                    (id.clone(), name)
                })
                .collect();
            x.list("groups", &pairs, |x, (id, name)| {
                x.text("userId", &owner)
                    .text("groupId", id)
                    .text("groupName", name);
            });
            x.list("ipRanges", r.cidr.iter(), |x, cidr| {
                x.text("cidrIp", cidr);
            });
            x.open("ipv6Ranges")
                .close("ipv6Ranges")
                .open("prefixListIds")
                .close("prefixListIds");
        });
        x.list("ipPermissionsEgress", [()], |x, ()| {
            x.text("ipProtocol", "-1").open("groups").close("groups");
            x.list("ipRanges", ["0.0.0.0/0"], |x, cidr| {
                x.text("cidrIp", cidr);
            });
            x.open("ipv6Ranges")
                .close("ipv6Ranges")
                .open("prefixListIds")
                .close("prefixListIds");
        });
        let own = super::tags::of(&tags, &g.group_id);
        if !own.is_empty() {
            x.list("tagSet", &own, |x, (k, v)| {
                x.text("key", k).text("value", v);
            });
        }
    });
    Ok(cx.finish(x))
}
