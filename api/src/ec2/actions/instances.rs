//! DescribeInstances and DescribeInstanceStatus.

use std::collections::HashMap;

use base64::Engine;
use stratus_rpc::wire::conductor::InstanceState;

use super::super::error::Ec2Error;
use super::super::filters::{self, Filter};
use super::super::params::shown;
use super::super::{Ctx, ids};
use super::render;
use crate::db::instances::InstanceRow;

/// Filters DescribeInstances knows.
const FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "key-name",
    "image-id",
    "availability-zone",
    "private-ip-address",
    "ip-address",
    "dns-name",
    "reservation-id",
    "kernel-id",
    "ramdisk-id",
    "owner-id",
    "ami-launch-index",
    "launch-index",
    "instance.group-id",
    "instance.group-name",
    "group-id",
    "group-name",
    "vpc-id",
    "subnet-id",
    "network-interface.network-interface-id",
    "network-interface.vpc-id",
    "network-interface.subnet-id",
    "network-interface.mac-address",
    "network-interface.addresses.private-ip-address",
    "source-dest-check",
];

/// The caller's instances named by `ids` (all of them when empty). A
/// malformed id, or one the project does not have, is an error naming it:
/// another project's instance is "not found", never "forbidden".
pub async fn find(cx: &Ctx<'_>, ids: &[String]) -> Result<Vec<InstanceRow>, Ec2Error> {
    for id in ids {
        if !ids::is_id("i", id) {
            return Err(Ec2Error::client(
                "InvalidInstanceID.Malformed",
                format!("Invalid id: \"{}\"", shown(id)),
            ));
        }
    }
    let rows = cx
        .cloud
        .db
        .instances(&cx.caller.project_id, (!ids.is_empty()).then_some(ids))
        .await?;
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !rows.iter().any(|r| &r.ec2_id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let listed = missing
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let what = if missing.len() == 1 { "ID" } else { "IDs" };
        let verb = if missing.len() == 1 { "does" } else { "do" };
        return Err(Ec2Error::client(
            "InvalidInstanceID.NotFound",
            format!("The instance {what} {listed} {verb} not exist"),
        ));
    }
    Ok(rows)
}

/// The instance's values for a filter name.
fn values(i: &InstanceRow, name: &str, default_zone: &str) -> Vec<String> {
    let one = |v: &str| vec![v.to_owned()];
    let opt = |v: &Option<String>| v.iter().cloned().collect();
    match name {
        "instance-id" => one(&i.ec2_id),
        "instance-state-name" => one(i.state.ec2_name()),
        "instance-state-code" => vec![i.state.code().to_string()],
        "instance-type" => one(&i.instance_type),
        "key-name" => opt(&i.key_name),
        "image-id" => one(&i.image_id),
        "availability-zone" => vec![
            i.availability_zone
                .clone()
                .unwrap_or_else(|| default_zone.to_owned()),
        ],
        "private-ip-address" => opt(&i.fixed_ip),
        "ip-address" => opt(&i.public_ip),
        "reservation-id" => one(&i.reservation_id),
        "kernel-id" => opt(&i.kernel_id),
        "ramdisk-id" => opt(&i.ramdisk_id),
        "owner-id" => vec![super::super::ids::account_id(&i.project_id)],
        "ami-launch-index" | "launch-index" => vec![i.launch_index.to_string()],
        "instance.group-id" | "group-id" => i.groups.iter().map(|(id, _)| id.clone()).collect(),
        "instance.group-name" | "group-name" => i.groups.iter().map(|(_, n)| n.clone()).collect(),
        "vpc-id" | "network-interface.vpc-id" => one(&ids::default_vpc_id(&i.project_id)),
        "subnet-id" | "network-interface.subnet-id" => one(&ids::default_subnet_id(
            &i.project_id,
            render::instance_zone(i, default_zone),
        )),
        "source-dest-check" => one(&i.attributes.source_dest_check.to_string()),
        "network-interface.network-interface-id" | "network-interface.mac-address" => {
            let interface = super::network_interfaces::of(i, default_zone, None);
            interface
                .map(|n| match name {
                    "network-interface.mac-address" => n.mac,
                    _ => n.id,
                })
                .into_iter()
                .collect()
        }
        "network-interface.addresses.private-ip-address" => opt(&i.fixed_ip),
        _ => vec![],
    }
}

/// Instance tags by instance id: of `ids`, or of all the project's.
async fn instance_tags(
    cx: &Ctx<'_>,
    ids: Option<&[String]>,
) -> Result<HashMap<String, Vec<(String, String)>>, Ec2Error> {
    let mut by_id: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for t in cx.cloud.db.tags(&cx.caller.project_id, ids).await? {
        if t.resource_type == "instance" {
            by_id
                .entry(t.resource_id)
                .or_default()
                .push((t.key, t.value));
        }
    }
    Ok(by_id)
}

/// `MaxResults`, checked to be what EC2 allows.
fn max_results(cx: &Ctx<'_>) -> Result<Option<usize>, Ec2Error> {
    let max = cx.params.int("MaxResults")?;
    if let Some(max) = max
        && !(5..=1000).contains(&max)
    {
        return Err(Ec2Error::invalid(format!(
            "Value ( {max} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
        )));
    }
    Ok(max.and_then(|m| usize::try_from(m).ok()))
}

/// The id `NextToken` says the last page ended at.
fn after_token(cx: &Ctx<'_>) -> Result<Option<String>, Ec2Error> {
    cx.params
        .get("NextToken")
        .filter(|t| !t.is_empty())
        .map(|token| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Ec2Error::invalid("The NextToken is not valid."))
        })
        .transpose()
}

fn token(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The page of `rows` (in id order) after `NextToken`, at most `MaxResults`
/// long, and the token for the next page.
pub(crate) fn page<T>(
    cx: &Ctx<'_>,
    rows: Vec<T>,
    id_of: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), Ec2Error> {
    let max = max_results(cx)?;
    let after = after_token(cx)?;
    let take = max.unwrap_or(usize::MAX);
    let mut page: Vec<T> = rows
        .into_iter()
        .filter(|r| after.as_deref().is_none_or(|a| id_of(r) > a))
        .take(take.saturating_add(1))
        .collect();
    let next = (page.len() > take)
        .then(|| {
            page.truncate(take);
            page.last().map(|r| token(id_of(r)))
        })
        .flatten();
    Ok((page, next))
}

/// DescribeInstances: the caller's instances by id and filters, grouped by
/// reservation, a page at a time.
pub async fn describe_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ids = cx.params.list("InstanceId")?;
    if !ids.is_empty() && cx.params.get("MaxResults").is_some() {
        return Err(Ec2Error::client(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let wanted: Vec<Filter> = filters::parse(cx.params, FILTERS)?;
    let zone = default_zone(cx);
    let project = &cx.caller.project_id;
    let max = max_results(cx)?;
    let (rows, next) = match max {
        // A plain page: the database pages, so a page costs its own size.
        Some(max) if ids.is_empty() && wanted.is_empty() => {
            let after = after_token(cx)?.unwrap_or_default();
            let mut rows = cx
                .cloud
                .db
                .instances_after(project, &after, max + 1)
                .await?;
            let next = (rows.len() > max)
                .then(|| {
                    rows.truncate(max);
                    rows.last().map(|r| token(&r.ec2_id))
                })
                .flatten();
            (rows, next)
        }
        _ => {
            let rows = find(cx, &ids).await?;
            let tags = if wanted.iter().any(|f| f.name.starts_with("tag")) {
                instance_tags(cx, None).await?
            } else {
                HashMap::new()
            };
            let none = Vec::new();
            let rows: Vec<InstanceRow> = rows
                .into_iter()
                .filter(|i| {
                    filters::matches(&wanted, tags.get(&i.ec2_id).unwrap_or(&none), |n| {
                        if n == "dns-name" {
                            return dns_name(cx, i).into_iter().collect();
                        }
                        values(i, n, &zone)
                    })
                })
                .collect();
            page(cx, rows, |i| &i.ec2_id)?
        }
    };
    let listed: Vec<String> = rows.iter().map(|i| i.ec2_id.clone()).collect();
    let tags = instance_tags(cx, Some(&listed)).await?;
    let mut x = cx.response();
    let dns_domain = cx
        .cloud
        .config
        .public
        .as_ref()
        .map(|p| p.dns_domain.as_str());
    render::reservations(
        &mut x,
        &rows,
        &tags,
        &cx.caller.project_id,
        &zone,
        dns_domain,
    );
    x.opt("nextToken", next.as_deref());
    Ok(cx.finish(x))
}

/// The public DNS name of `i`, if it has a public address.
fn dns_name(cx: &Ctx<'_>, i: &InstanceRow) -> Option<String> {
    let public = cx.cloud.config.public.as_ref()?;
    let address = i.public_ip.as_deref()?.parse().ok()?;
    Some(stratus_rpc::wire::addresses::public_dns_name(
        address,
        &public.dns_domain,
    ))
}

/// The zone shown for instances not yet placed.
pub fn default_zone(cx: &Ctx<'_>) -> String {
    cx.cloud
        .zones
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| "nova".to_owned())
}

/// DescribeInstanceStatus: running instances (all with
/// `IncludeAllInstances=true`) with their state and status checks.
pub async fn describe_instance_status(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ids = cx.params.list("InstanceId")?;
    let all = cx.params.flag("IncludeAllInstances")?;
    let wanted = filters::parse(
        cx.params,
        &[
            "availability-zone",
            "instance-state-name",
            "instance-state-code",
            "instance-id",
        ],
    )?;
    let zone = default_zone(cx);
    let rows: Vec<InstanceRow> = find(cx, &ids)
        .await?
        .into_iter()
        .filter(|i| all || i.state == InstanceState::Running)
        .filter(|i| filters::matches(&wanted, &[], |n| values(i, n, &zone)))
        .collect();
    let (rows, next) = page(cx, rows, |i| &i.ec2_id)?;
    let mut x = cx.response();
    x.list("instanceStatusSet", &rows, |x, i| {
        x.text("instanceId", &i.ec2_id).text(
            "availabilityZone",
            i.availability_zone.as_deref().unwrap_or(&zone),
        );
        render::instance_state(x, "instanceState", i.state);
        let status = match i.state {
            InstanceState::Running => "ok",
            InstanceState::Pending => "initializing",
            _ => "not-applicable",
        };
        for element in ["systemStatus", "instanceStatus"] {
            x.open(element).text("status", status);
            x.list("details", [()], |x, ()| {
                x.text("name", "reachability").text(
                    "status",
                    if status == "ok" {
                        "passed"
                    } else {
                        "initializing"
                    },
                );
            });
            x.close(element);
        }
    });
    x.opt("nextToken", next.as_deref());
    Ok(cx.finish(x))
}
