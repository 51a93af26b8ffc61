//! Elastic IPs: AllocateAddress, AssociateAddress, DisassociateAddress,
//! ReleaseAddress, DescribeAddresses. Everything is the caller's project's:
//! another project's address is "not found", never revealed.

use std::net::Ipv4Addr;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::shown;
use super::super::{Ctx, all_found, ids};
use super::tags;
use crate::app::addresses::{self, AddressError, AddressRef, AssociationRef};

impl From<AddressError> for Ec2Error {
    fn from(e: AddressError) -> Self {
        use AddressError as A;
        match e {
            A::NoPublicRange => Self::client(
                "UnsupportedOperation",
                "This cloud has no public address range ([network] public_range is empty).",
            ),
            A::LimitExceeded { limit } => Self::client(
                "AddressLimitExceeded",
                format!("The maximum number of addresses ({limit}) has been reached."),
            ),
            A::PoolExhausted { .. } => Self::client(
                "AddressLimitExceeded",
                "Every address of the cloud's public range is allocated.",
            ),
            A::InUse(address) => Self::client(
                "InvalidIPAddress.InUse",
                format!("Address {address} is in use."),
            ),
            A::Associated(address) => Self::client(
                "InvalidIPAddress.InUse",
                format!("Address {address} is associated; disassociate it first."),
            ),
            A::OutsideRange { address, range } => Self::invalid(format!(
                "Address {address} is not in the cloud's public range {range}."
            )),
            A::AddressNotFound(address) => Self::client(
                "InvalidAddress.NotFound",
                format!("Address '{}' not found.", shown(&address)),
            ),
            A::AllocationNotFound(id) => Self::client(
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{}' does not exist", shown(&id)),
            ),
            A::AssociationNotFound(id) => Self::client(
                "InvalidAssociationID.NotFound",
                format!("The association ID '{}' does not exist", shown(&id)),
            ),
            A::InstanceNotFound(id) => Self::client(
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{}' does not exist", shown(&id)),
            ),
            A::IncorrectInstanceState { instance, state } => Self::client(
                "IncorrectInstanceState",
                format!("The instance '{instance}' is {state}: it cannot take an address."),
            ),
            A::AlreadyAssociated(address) => Self::client(
                "Resource.AlreadyAssociated",
                format!(
                    "Address {address} is already associated; set AllowReassociation to move it."
                ),
            ),
            A::Changed(address) => Self::unavailable(format!(
                "Address {address} changed while this request ran; try again."
            )),
            A::Network(source) => {
                tracing::warn!(error = %stratus_rpc::error::error_chain(&*source), "mapping public addresses");
                Self::unavailable(
                    "The network host could not apply the change; nothing was changed. Try again.",
                )
            }
            A::Db(e) => e.into(),
        }
    }
}

/// A `PublicIp` parameter, checked to be an IPv4 address.
fn public_ip(value: &str) -> Result<String, Ec2Error> {
    value
        .parse::<Ipv4Addr>()
        .map(|a| a.to_string())
        .map_err(|_| {
            Ec2Error::invalid(format!(
                "Invalid value '{}' for PublicIp: not an IPv4 address.",
                shown(value)
            ))
        })
}

/// The address named by `PublicIp` or `AllocationId`.
fn address_ref(cx: &Ctx<'_>) -> Result<AddressRef, Ec2Error> {
    match (
        cx.params.get("AllocationId").filter(|v| !v.is_empty()),
        cx.params.get("PublicIp").filter(|v| !v.is_empty()),
    ) {
        (Some(id), _) => {
            if !ids::is_id("eipalloc", id) {
                return Err(Ec2Error::client(
                    "InvalidAllocationID.Malformed",
                    format!("Invalid id: \"{}\"", shown(id)),
                ));
            }
            Ok(AddressRef::AllocationId(id.to_owned()))
        }
        (None, Some(ip)) => Ok(AddressRef::PublicIp(public_ip(ip)?)),
        (None, None) => Err(Ec2Error::missing("PublicIp or AllocationId")),
    }
}

/// AllocateAddress.
pub async fn allocate_address(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    // No Domain is `standard`, as EC2-Classic clients (apache-libcloud's
    // driver among them) mean it: they send `Domain` only for `vpc`.
    let domain = match cx.params.get("Domain").filter(|d| !d.is_empty()) {
        None => "standard",
        Some("vpc") => "vpc",
        Some("standard") => "standard",
        Some(other) => {
            return Err(Ec2Error::invalid(format!(
                "Invalid value '{}' for Domain: use standard or vpc.",
                shown(other)
            )));
        }
    };
    let specific = match cx.params.get("Address").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(a.parse::<Ipv4Addr>().map_err(|_| {
            Ec2Error::invalid(format!(
                "Invalid value '{}' for Address: not an IPv4 address.",
                shown(a)
            ))
        })?),
    };
    cx.dry_run()?;
    let row = addresses::allocate(cx.cloud, cx.caller, domain, specific).await?;
    let mut x = cx.response();
    x.text("publicIp", &row.public_ip)
        .text("allocationId", &row.allocation_id)
        .text("publicIpv4Pool", "amazon")
        .text("networkBorderGroup", &cx.cloud.config.region)
        .text("domain", &row.domain);
    Ok(cx.finish(x))
}

/// AssociateAddress (to an instance; network interfaces are not offered).
pub async fn associate_address(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    for unsupported in ["NetworkInterfaceId", "PrivateIpAddress"] {
        if cx.params.get(unsupported).is_some_and(|v| !v.is_empty()) {
            return Err(Ec2Error::client(
                "UnsupportedOperation",
                format!(
                    "{unsupported} is not supported: associate the address with an InstanceId."
                ),
            ));
        }
    }
    let instance_id = cx.params.required("InstanceId")?.to_owned();
    if !ids::is_id("i", &instance_id) {
        return Err(Ec2Error::client(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{}\"", shown(&instance_id)),
        ));
    }
    let which = address_ref(cx)?;
    let allow = cx.params.flag("AllowReassociation")?;
    cx.dry_run()?;
    let association_id = addresses::associate(
        cx.cloud,
        cx.caller,
        &cx.rpc_context(),
        &which,
        &instance_id,
        allow,
    )
    .await?;
    // botocore's AssociateAddressResult has `associationId` alone: a
    // `return` beside it (as EC2's samples show) is dropped by every SDK.
    let mut x = cx.response();
    x.text("associationId", &association_id);
    Ok(cx.finish(x))
}

/// DisassociateAddress.
pub async fn disassociate_address(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let which = match (
        cx.params.get("AssociationId").filter(|v| !v.is_empty()),
        cx.params.get("PublicIp").filter(|v| !v.is_empty()),
    ) {
        (Some(id), _) => {
            if !ids::is_id("eipassoc", id) {
                return Err(Ec2Error::client(
                    "InvalidAssociationID.Malformed",
                    format!("Invalid id: \"{}\"", shown(id)),
                ));
            }
            AssociationRef::AssociationId(id.to_owned())
        }
        (None, Some(ip)) => AssociationRef::PublicIp(public_ip(ip)?),
        (None, None) => return Err(Ec2Error::missing("PublicIp or AssociationId")),
    };
    cx.dry_run()?;
    addresses::disassociate(cx.cloud, cx.caller, &cx.rpc_context(), &which).await?;
    Ok(cx.ok())
}

/// ReleaseAddress.
pub async fn release_address(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let which = address_ref(cx)?;
    cx.dry_run()?;
    addresses::release(cx.cloud, cx.caller, &cx.rpc_context(), &which).await?;
    Ok(cx.ok())
}

/// Filters DescribeAddresses knows.
const FILTERS: &[&str] = &[
    "public-ip",
    "allocation-id",
    "association-id",
    "instance-id",
    "domain",
    "private-ip-address",
    "network-border-group",
];

/// DescribeAddresses.
pub async fn describe_addresses(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ips = cx
        .params
        .list("PublicIp")?
        .iter()
        .map(|ip| public_ip(ip))
        .collect::<Result<Vec<_>, _>>()?;
    let allocation_ids = cx.params.list("AllocationId")?;
    let wanted = filters::parse(cx.params, FILTERS)?;
    let mut all = if cx.cloud.config.public.is_some() {
        addresses::describe(cx.cloud, cx.caller).await?
    } else {
        vec![]
    };
    all_found(
        &ips,
        |ip| all.iter().any(|a| &a.public_ip == ip),
        |ip| AddressError::AddressNotFound(ip.to_owned()).into(),
    )?;
    all_found(
        &allocation_ids,
        |id| all.iter().any(|a| &a.allocation_id == id),
        |id| AddressError::AllocationNotFound(id.to_owned()).into(),
    )?;
    let region = cx.cloud.config.region.clone();
    let tags = cx.cloud.db.tags(&cx.caller.project_id, None).await?;
    all.retain(|a| {
        (ips.is_empty() && allocation_ids.is_empty()
            || ips.contains(&a.public_ip)
            || allocation_ids.contains(&a.allocation_id))
            && filters::matches(&wanted, &tags::of(&tags, &a.allocation_id), |n| match n {
                "public-ip" => vec![a.public_ip.clone()],
                "allocation-id" => vec![a.allocation_id.clone()],
                "association-id" => a.association_id.iter().cloned().collect(),
                "instance-id" => a.instance_ec2_id.iter().cloned().collect(),
                "domain" => vec![a.domain.clone()],
                "private-ip-address" => a.private_ip.iter().cloned().collect(),
                "network-border-group" => vec![region.clone()],
                _ => vec![],
            })
    });
    let mut x = cx.response();
    x.list("addressesSet", &all, |x, a| {
        x.text("publicIp", &a.public_ip)
            .text("allocationId", &a.allocation_id)
            .text("domain", &a.domain);
        if a.instance_uuid.is_some() {
            x.opt("instanceId", a.instance_ec2_id.as_deref())
                .opt("associationId", a.association_id.as_deref())
                .opt("privateIpAddress", a.private_ip.as_deref());
        }
        x.list("tagSet", tags::of(&tags, &a.allocation_id), |x, (k, v)| {
            x.text("key", &k).text("value", &v);
        });
        x.text("publicIpv4Pool", "amazon")
            .text("networkBorderGroup", &region);
    });
    Ok(cx.finish(x))
}
