//! Where RunInstances puts an instance on the network, as current clients
//! say it: `SubnetId`, `SecurityGroupId.N` / `SecurityGroup.N`,
//! `PrivateIpAddress`, or all of these inside `NetworkInterface.1` (one
//! interface, device 0, made with the instance and gone with it).

use std::net::Ipv4Addr;

use super::super::error::Ec2Error;
use super::super::params::{Params, shown};
use super::super::{Ctx, ids};
use crate::app::vpcs::default_vpc;

/// What the request asks of the instance's one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceChoice {
    /// The zone the subnet asked for lies in, if a subnet was named.
    pub subnet_zone: Option<String>,
    /// Groups by id.
    pub group_ids: Vec<String>,
    /// Groups by name (top level only, as EC2 has it).
    pub group_names: Vec<String>,
    /// The fixed IP asked for.
    pub private_ip: Option<Ipv4Addr>,
    /// `AssociatePublicIpAddress`, when given.
    pub public_ip: Option<bool>,
}

/// The fields of `NetworkInterface.1` taken (lists by their stem).
const KNOWN: &[&str] = &[
    "DeviceIndex",
    "AssociatePublicIpAddress",
    "SubnetId",
    "SecurityGroupId",
    "PrivateIpAddress",
    "PrivateIpAddresses",
    "PrivateIpAddressesSet",
    "DeleteOnTermination",
    "Description",
];

fn unsupported(message: impl Into<String>) -> Ec2Error {
    Ec2Error::client("UnsupportedOperation", message)
}

fn combination(message: impl Into<String>) -> Ec2Error {
    Ec2Error::client("InvalidParameterCombination", message)
}

/// A private IPv4 address as given, or EC2's refusal.
fn address(value: &str) -> Result<Ipv4Addr, Ec2Error> {
    value.trim().parse().map_err(|_| {
        Ec2Error::invalid(format!(
            "Invalid value '{}' for PrivateIpAddress: not an IPv4 address.",
            shown(value)
        ))
    })
}

/// The zone of the caller's default subnet `id` among `zones`.
fn subnet_zone(cx: &Ctx<'_>, id: &str, zones: &[String]) -> Result<String, Ec2Error> {
    zones
        .iter()
        .find(|z| ids::default_subnet_id(&cx.caller.project_id, z) == id)
        .cloned()
        .ok_or_else(|| {
            Ec2Error::client(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{}' does not exist", shown(id)),
            )
        })
}

/// The primary address of `PrivateIpAddresses.N` (only one, primary, is
/// taken: an instance has one fixed IP).
fn primary_address(interface: &Params) -> Result<Option<Ipv4Addr>, Ec2Error> {
    let mut listed = interface.structs("PrivateIpAddresses")?;
    listed.extend(interface.structs("PrivateIpAddressesSet")?);
    match listed.as_slice() {
        [] => Ok(None),
        [one] if !matches!(one.get("Primary"), Some(p) if p.eq_ignore_ascii_case("false")) => {
            Ok(Some(address(one.required("PrivateIpAddress")?)?))
        }
        _ => Err(unsupported(
            "Only one private IP address, the primary one, is supported.",
        )),
    }
}

/// What `NetworkInterface.1` asks for; refuses what cannot be had here.
fn interface(cx: &Ctx<'_>, i: &Params, zones: &[String]) -> Result<InterfaceChoice, Ec2Error> {
    if i.get("NetworkInterfaceId").is_some() {
        return Err(unsupported(
            "Attaching an existing network interface is not supported: the instance's interface is made with it.",
        ));
    }
    let stem = |name: &str| name.split('.').next().unwrap_or_default().to_owned();
    if let Some(unknown) = i.names().find(|n| !KNOWN.contains(&stem(n).as_str())) {
        return Err(unsupported(format!(
            "NetworkInterface.N.{} is not supported.",
            shown(unknown)
        )));
    }
    if let Some(index) = i.int("DeviceIndex")?
        && index != 0
    {
        return Err(unsupported(format!(
            "Only the network interface with DeviceIndex 0 is supported (got {index})."
        )));
    }
    if i.get("DeleteOnTermination").is_some() && !i.flag("DeleteOnTermination")? {
        return Err(unsupported(
            "DeleteOnTermination=false is not supported: the interface lives and dies with its instance.",
        ));
    }
    if i.get("Description")
        .is_some_and(|d| d.chars().count() > 255)
    {
        return Err(Ec2Error::invalid(
            "The interface description is limited to 255 characters.",
        ));
    }
    let single = i.get("PrivateIpAddress").map(address).transpose()?;
    let listed = primary_address(i)?;
    if single.is_some() && listed.is_some() && single != listed {
        return Err(combination(
            "PrivateIpAddress and the primary of PrivateIpAddresses differ.",
        ));
    }
    let subnet_zone = match i.get("SubnetId").filter(|s| !s.is_empty()) {
        Some(id) => Some(subnet_zone(cx, id, zones)?),
        None => None,
    };
    let public_ip = match i.get("AssociatePublicIpAddress") {
        None => None,
        Some(_) => Some(i.flag("AssociatePublicIpAddress")?),
    };
    Ok(InterfaceChoice {
        subnet_zone,
        group_ids: i.list("SecurityGroupId")?,
        group_names: vec![],
        private_ip: single.or(listed),
        public_ip,
    })
}

/// What the request asks of the network, with `zones` the zones the api
/// knows (one default subnet each).
pub fn choice(cx: &Ctx<'_>, zones: &[String]) -> Result<InterfaceChoice, Ec2Error> {
    let p = cx.params;
    let interfaces = p.structs("NetworkInterface")?;
    let subnet = p.get("SubnetId").filter(|s| !s.is_empty());
    let group_ids = p.list("SecurityGroupId")?;
    let group_names = p.list("SecurityGroup")?;
    let private_ip = p.get("PrivateIpAddress").filter(|a| !a.is_empty());
    match interfaces.as_slice() {
        [] => Ok(InterfaceChoice {
            subnet_zone: subnet.map(|id| subnet_zone(cx, id, zones)).transpose()?,
            group_ids,
            group_names,
            private_ip: private_ip.map(address).transpose()?,
            public_ip: None,
        }),
        [one] => {
            if subnet.is_some() {
                return Err(combination(
                    "Network interfaces and an instance-level subnet ID may not be specified on the same request",
                ));
            }
            if !group_ids.is_empty() || !group_names.is_empty() {
                return Err(combination(
                    "Network interfaces and an instance-level security groups may not be specified on the same request",
                ));
            }
            if private_ip.is_some() {
                return Err(combination(
                    "Network interfaces and an instance-level private IP address may not be specified on the same request",
                ));
            }
            interface(cx, one, zones)
        }
        _ => Err(unsupported(
            "Only one network interface (DeviceIndex 0) is supported.",
        )),
    }
}

/// Refuses `address` when the project's network cannot give it: outside
/// the subnet's CIDR (every default subnet has the VPC's), or its network,
/// broadcast or gateway address. When the network host cannot be asked
/// the check is left to it: it refuses such an address at the build.
pub async fn check_in_subnet(cx: &Ctx<'_>, address: Ipv4Addr) -> Result<(), Ec2Error> {
    let vpc = match default_vpc(cx.cloud, &cx.rpc_context(), &cx.caller.project_id).await {
        Ok(vpc) => vpc,
        Err(e) => {
            tracing::warn!(error = %stratus_rpc::error::error_chain(&e), %address, "the subnet of a requested private IP address is not known; the network host checks it");
            return Ok(());
        }
    };
    let Ok(network) = vpc.cidr.parse::<ipnet::Ipv4Net>() else {
        return Ok(());
    };
    if !network.contains(&address) {
        return Err(Ec2Error::invalid(format!(
            "Address {address} does not fall within the subnet's address range {network}."
        )));
    }
    let reserved = [network.network(), network.broadcast()];
    if reserved.contains(&address) || vpc.gateway.parse::<Ipv4Addr>().ok() == Some(address) {
        return Err(Ec2Error::invalid(format!(
            "Address {address} is reserved in the subnet {network}."
        )));
    }
    Ok(())
}
