//! Security-group rules as EC2 states them: `IpPermissions.N…` (or the
//! legacy flat form) parsed for Authorize/Revoke, ingress and egress alike,
//! and rendered as `ipPermissions` / `ipPermissionsEgress` items.

use super::super::error::Ec2Error;
use super::super::params::Params;
use super::super::xml::Xml;
use crate::app::security_groups::{GroupRef, Peer, RequestedRule};
use crate::db::groups::{GroupRow, RuleRow};

/// A group named by `GroupId` or `GroupName` in `p`, if either is given.
fn group_ref(p: &Params) -> Option<GroupRef> {
    match (p.get("GroupId"), p.get("GroupName")) {
        (Some(id), _) if !id.is_empty() => Some(GroupRef::Id(id.to_owned())),
        (_, Some(name)) if !name.is_empty() => Some(GroupRef::Name(name.to_owned())),
        _ => None,
    }
}

/// The group a request changes: `GroupId`, or (when `by_name`) `GroupName`.
pub fn target_group(params: &Params, by_name: bool) -> Result<GroupRef, Ec2Error> {
    match group_ref(params) {
        Some(GroupRef::Id(id)) => Ok(GroupRef::Id(id)),
        Some(name) if by_name => Ok(name),
        _ => Err(Ec2Error::missing("GroupId")),
    }
}

fn port(p: &Params, name: &str) -> Result<Option<i32>, Ec2Error> {
    p.int(name)?
        .map(|v| {
            i32::try_from(v).map_err(|_| Ec2Error::invalid(format!("{name} {v} is out of range")))
        })
        .transpose()
}

/// A rule's `Description`, if given: up to 255 characters, none a control
/// character, as EC2 takes it.
pub fn description(p: &Params) -> Result<Option<String>, Ec2Error> {
    let Some(text) = p.get("Description") else {
        return Ok(None);
    };
    if text.chars().count() > 255 || text.chars().any(char::is_control) {
        return Err(Ec2Error::invalid(
            "A rule description must be up to 255 printable characters.",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The rules a request gives: `IpPermissions.N…` or the legacy flat form
/// (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`, `SourceSecurityGroupName`).
pub fn requested(params: &Params) -> Result<Vec<RequestedRule>, Ec2Error> {
    let mut rules = Vec::new();
    let permissions = params.structs("IpPermissions")?;
    if permissions.is_empty() {
        // The flat form older tools send.
        let protocol = params.required("IpProtocol")?.to_owned();
        let (from_port, to_port) = (port(params, "FromPort")?, port(params, "ToPort")?);
        let peer = match params.get("SourceSecurityGroupName") {
            Some(name) => Peer::Group(GroupRef::Name(name.to_owned())),
            None => Peer::Cidr(params.get("CidrIp").unwrap_or("0.0.0.0/0").to_owned()),
        };
        rules.push(RequestedRule {
            protocol,
            from_port,
            to_port,
            peer,
            description: None,
        });
    }
    for p in permissions {
        let protocol = p.required("IpProtocol")?.to_owned();
        let (from_port, to_port) = (port(&p, "FromPort")?, port(&p, "ToPort")?);
        if !p.structs("Ipv6Ranges")?.is_empty() {
            return Err(Ec2Error::invalid("IPv6 rules are not supported."));
        }
        let mut peers = Vec::new();
        for range in p.structs("IpRanges")? {
            peers.push((
                Peer::Cidr(range.required("CidrIp")?.to_owned()),
                description(&range)?,
            ));
        }
        for pair in p
            .structs("UserIdGroupPairs")?
            .iter()
            .chain(p.structs("Groups")?.iter())
        {
            let group =
                group_ref(pair).ok_or_else(|| Ec2Error::missing("UserIdGroupPairs.GroupId"))?;
            peers.push((Peer::Group(group), description(pair)?));
        }
        if peers.is_empty() {
            return Err(Ec2Error::missing("IpPermissions.IpRanges"));
        }
        rules.extend(peers.into_iter().map(|(peer, description)| RequestedRule {
            protocol: protocol.clone(),
            from_port,
            to_port,
            peer,
            description,
        }));
    }
    Ok(rules)
}

/// `name` (`ipPermissions` or `ipPermissionsEgress`) listing `rules`, one
/// item per rule; `groups` names the groups rules point at, `owner` owns them.
pub fn render(x: &mut Xml, name: &str, rules: &[RuleRow], groups: &[GroupRow], owner: &str) {
    x.list(name, rules, |x, r| {
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
            x.text("userId", owner)
                .text("groupId", id)
                .text("groupName", name);
            if let Some(d) = &r.description {
                x.text("description", d);
            }
        });
        x.list("ipRanges", r.cidr.iter(), |x, cidr| {
            x.text("cidrIp", cidr);
            if let Some(d) = &r.description {
                x.text("description", d);
            }
        });
        x.open("ipv6Ranges")
            .close("ipv6Ranges")
            .open("prefixListIds")
            .close("prefixListIds");
    });
}
