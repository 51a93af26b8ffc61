//! Network interfaces: each live instance has one, its primary, on the
//! default subnet of its zone. Nothing about it is stored: its ids derive
//! from the instance's UUID (`ec2::ids`), its MAC is the one the compute
//! worker gives the guest (`InstanceId::mac`), its addresses are the
//! instance's. DescribeNetworkInterfaces lists them; DescribeInstances shows
//! the same interface inside each instance.

use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::shown;
use super::super::xml::Xml;
use super::super::{Ctx, ids};
use super::instances::default_zone;
use super::render::instance_zone;
use crate::db::instances::InstanceRow;

/// An instance's primary interface, as derived.
#[derive(Debug, Clone)]
pub struct Interface<'a> {
    /// The instance.
    pub instance: &'a InstanceRow,
    /// `eni-…`.
    pub id: String,
    /// `eni-attach-…`.
    pub attachment_id: String,
    /// The project's default VPC.
    pub vpc_id: String,
    /// The default subnet of the instance's zone.
    pub subnet_id: String,
    /// The instance's zone.
    pub zone: String,
    /// The guest's MAC address (empty if the row's UUID does not parse).
    pub mac: String,
    /// The project's account id.
    pub owner_id: String,
    /// The public DNS name of its public address, if any.
    pub public_dns: Option<String>,
}

/// Which shape an interface is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// botocore's `InstanceNetworkInterface` (inside an instance).
    InInstance,
    /// botocore's `NetworkInterface` (DescribeNetworkInterfaces).
    Alone,
}

/// The primary interface of `i`, shown in `default_zone` if it has none;
/// none for a terminated instance, which has let its interface go.
pub fn of<'a>(
    i: &'a InstanceRow,
    default_zone: &str,
    dns_domain: Option<&str>,
) -> Option<Interface<'a>> {
    if i.state == InstanceState::Terminated {
        return None;
    }
    let zone = instance_zone(i, default_zone).to_owned();
    let public_dns = i
        .public_ip
        .as_deref()
        .and_then(|a| a.parse().ok())
        .zip(dns_domain)
        .map(|(a, d)| stratus_rpc::wire::addresses::public_dns_name(a, d));
    Some(Interface {
        instance: i,
        id: ids::network_interface_id(&i.uuid),
        attachment_id: ids::attachment_id(&i.uuid),
        vpc_id: ids::default_vpc_id(&i.project_id),
        subnet_id: ids::default_subnet_id(&i.project_id, &zone),
        mac: i
            .uuid
            .parse::<InstanceId>()
            .map(|id| id.mac().to_string())
            .unwrap_or_default(),
        owner_id: ids::account_id(&i.project_id),
        zone,
        public_dns,
    })
}

/// `association`: the public address, when the instance has one.
fn association(x: &mut Xml, n: &Interface<'_>) {
    if let Some(ip) = &n.instance.public_ip {
        x.open("association")
            .text("ipOwnerId", "amazon")
            .text("publicDnsName", n.public_dns.as_deref().unwrap_or(""))
            .text("publicIp", ip)
            .close("association");
    }
}

/// Writes the interface's fields in `shape` (the caller opens the item).
pub fn write(x: &mut Xml, n: &Interface<'_>, shape: Shape) {
    let i = n.instance;
    let ip = i.fixed_ip.as_deref();
    association(x, n);
    x.open("attachment")
        .text("attachTime", &i.launched_at)
        .text("attachmentId", &n.attachment_id)
        .value("deleteOnTermination", true)
        .value("deviceIndex", 0)
        .value("networkCardIndex", 0)
        .text("status", "attached");
    if shape == Shape::Alone {
        x.text("instanceId", &i.ec2_id)
            .text("instanceOwnerId", &n.owner_id);
    }
    x.close("attachment");
    if shape == Shape::Alone {
        x.text("availabilityZone", &n.zone)
            .value("requesterManaged", false);
    }
    x.text("description", "")
        .text("interfaceType", "interface")
        .text("macAddress", &n.mac)
        .text("networkInterfaceId", &n.id)
        .text("ownerId", &n.owner_id)
        .opt("privateDnsName", ip)
        .opt("privateIpAddress", ip)
        .value("sourceDestCheck", i.attributes.source_dest_check)
        .text("status", "in-use")
        .text("subnetId", &n.subnet_id)
        .text("vpcId", &n.vpc_id);
    x.list("groupSet", &i.groups, |x, (id, name)| {
        x.text("groupId", id).text("groupName", name);
    });
    x.open("ipv6AddressesSet").close("ipv6AddressesSet");
    if let Some(ip) = ip {
        x.list("privateIpAddressesSet", [ip], |x, ip| {
            association(x, n);
            x.value("primary", true)
                .text("privateDnsName", ip)
                .text("privateIpAddress", ip);
        });
    }
}

/// Filters DescribeNetworkInterfaces knows.
const FILTERS: &[&str] = &[
    "network-interface-id",
    "attachment.instance-id",
    "attachment.attachment-id",
    "attachment.instance-owner-id",
    "attachment.status",
    "vpc-id",
    "subnet-id",
    "private-ip-address",
    "addresses.private-ip-address",
    "association.public-ip",
    "group-id",
    "group-name",
    "status",
    "mac-address",
    "availability-zone",
    "owner-id",
    "interface-type",
];

/// The interface's values for a filter name.
fn values(n: &Interface<'_>, name: &str) -> Vec<String> {
    let i = n.instance;
    let opt = |v: &Option<String>| v.iter().cloned().collect();
    match name {
        "network-interface-id" => vec![n.id.clone()],
        "attachment.instance-id" => vec![i.ec2_id.clone()],
        "attachment.attachment-id" => vec![n.attachment_id.clone()],
        "attachment.instance-owner-id" | "owner-id" => vec![n.owner_id.clone()],
        "attachment.status" => vec!["attached".into()],
        "vpc-id" => vec![n.vpc_id.clone()],
        "subnet-id" => vec![n.subnet_id.clone()],
        "private-ip-address" | "addresses.private-ip-address" => opt(&i.fixed_ip),
        "association.public-ip" => opt(&i.public_ip),
        "group-id" => i.groups.iter().map(|(id, _)| id.clone()).collect(),
        "group-name" => i.groups.iter().map(|(_, g)| g.clone()).collect(),
        "status" => vec!["in-use".into()],
        "mac-address" => vec![n.mac.clone()],
        "availability-zone" => vec![n.zone.clone()],
        "interface-type" => vec!["interface".into()],
        _ => vec![],
    }
}

/// DescribeNetworkInterfaces: the primary interfaces of the project's live
/// instances, by id and filters.
pub async fn describe_network_interfaces(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let wanted_ids = cx.params.list("NetworkInterfaceId")?;
    if let Some(bad) = wanted_ids.iter().find(|id| !ids::is_id("eni", id)) {
        return Err(Ec2Error::client(
            "InvalidNetworkInterfaceID.Malformed",
            format!("Invalid id: \"{}\"", shown(bad)),
        ));
    }
    let wanted = filters::parse(cx.params, FILTERS)?;
    let zone = default_zone(cx);
    let dns_domain = cx
        .cloud
        .config
        .public
        .as_ref()
        .map(|p| p.dns_domain.as_str());
    let rows = cx.cloud.db.instances(&cx.caller.project_id, None).await?;
    let all: Vec<Interface<'_>> = rows
        .iter()
        .filter_map(|i| of(i, &zone, dns_domain))
        .collect();
    if let Some(missing) = wanted_ids.iter().find(|w| !all.iter().any(|n| &n.id == *w)) {
        return Err(Ec2Error::client(
            "InvalidNetworkInterfaceID.NotFound",
            format!(
                "The networkInterface ID '{}' does not exist",
                shown(missing)
            ),
        ));
    }
    let tags = cx.cloud.db.tags(&cx.caller.project_id, None).await?;
    let chosen: Vec<(&Interface<'_>, Vec<(String, String)>)> = all
        .iter()
        .filter(|n| wanted_ids.is_empty() || wanted_ids.contains(&n.id))
        .map(|n| (n, super::tags::of(&tags, &n.id)))
        .filter(|(n, own)| filters::matches(&wanted, own, |f| values(n, f)))
        .collect();
    let mut x = cx.response();
    x.list("networkInterfaceSet", chosen, |x, (n, own)| {
        write(x, n, Shape::Alone);
        x.list("tagSet", own, |x, (k, v)| {
            x.text("key", &k).text("value", &v);
        });
    });
    Ok(cx.finish(x))
}
