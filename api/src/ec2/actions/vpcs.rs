//! The default VPC and its subnets: DescribeVpcs, DescribeVpcAttribute,
//! DescribeSubnets, and the refusal of every action that would make or
//! change VPCs, subnets, gateways or route tables. Each project has one VPC
//! (its network on the network controller) and one default subnet per
//! availability zone, all with the VPC's CIDR.

use stratus_rpc::wire::conductor::InstanceState;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::shown;
use super::super::{Ctx, all_found, ids};
use super::info::zones;
use super::tags;
use crate::app::vpcs::{self, DefaultSubnet, DefaultVpc, VpcError};

impl From<VpcError> for Ec2Error {
    fn from(e: VpcError) -> Self {
        match e {
            VpcError::Db(e) => e.into(),
            VpcError::Network { source, .. } => super::super::error::rpc_failure(
                "the network host (for this project's VPC)",
                &source,
            ),
            other => {
                tracing::warn!(error = %stratus_rpc::error::error_chain(&other), "default VPC");
                Self::unavailable(
                    "Could not reach the network host (for this project's VPC); try again.",
                )
            }
        }
    }
}

/// Filters DescribeVpcs knows.
/// (`isDefault` as amazon.aws's ec2_instance sends it, which EC2 accepts.)
const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "is-default",
    "isDefault",
    "cidr",
    "cidr-block-association.cidr-block",
    "cidr-block-association.state",
    "state",
    "owner-id",
    "dhcp-options-id",
];

/// Filters DescribeSubnets knows.
const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "availability-zone",
    "availability-zone-id",
    "default-for-az",
    "defaultForAz",
    "cidr-block",
    "cidr",
    "cidrBlock",
    "state",
    "map-public-ip-on-launch",
    "owner-id",
];

/// `InvalidVpcID.NotFound` for `id`.
pub fn vpc_not_found(id: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidVpcID.NotFound",
        format!("The vpc ID '{}' does not exist", shown(id)),
    )
}

fn subnet_not_found(id: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidSubnetID.NotFound",
        format!("The subnet ID '{}' does not exist", shown(id)),
    )
}

/// Ids of `prefix` in `wanted`, each well formed, else `<code>.Malformed`.
fn well_formed(wanted: &[String], prefix: &str, code: &'static str) -> Result<(), Ec2Error> {
    match wanted.iter().find(|id| !ids::is_id(prefix, id)) {
        Some(bad) => Err(Ec2Error::client(
            code,
            format!("Invalid id: \"{}\"", shown(bad)),
        )),
        None => Ok(()),
    }
}

/// DescribeVpcs: the project's one default VPC.
pub async fn describe_vpcs(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let wanted_ids = cx.params.list("VpcId")?;
    well_formed(&wanted_ids, "vpc", "InvalidVpcID.Malformed")?;
    let wanted = filters::parse(cx.params, VPC_FILTERS)?;
    let project = &cx.caller.project_id;
    let vpc_id = ids::default_vpc_id(project);
    all_found(&wanted_ids, |id| *id == vpc_id, vpc_not_found)?;
    let vpc = vpcs::default_vpc(cx.cloud, &cx.rpc_context(), project).await?;
    let all_tags = cx
        .cloud
        .db
        .tags(project, Some(std::slice::from_ref(&vpc.vpc_id)))
        .await?;
    let own = tags::of(&all_tags, &vpc.vpc_id);
    let shown_vpcs: Vec<&DefaultVpc> = [&vpc]
        .into_iter()
        .filter(|v| {
            filters::matches(&wanted, &own, |n| match n {
                "vpc-id" => vec![v.vpc_id.clone()],
                "is-default" | "isDefault" => vec!["true".into()],
                "cidr" | "cidr-block-association.cidr-block" => vec![v.cidr.clone()],
                "cidr-block-association.state" => vec!["associated".into()],
                "state" => vec!["available".into()],
                "owner-id" => vec![v.owner_id.clone()],
                "dhcp-options-id" => vec!["default".into()],
                _ => vec![],
            })
        })
        .collect();
    let mut x = cx.response();
    x.list("vpcSet", shown_vpcs, |x, v| {
        // EC2 shows `default` for a VPC without a DHCP options set: the
        // network's own dnsmasq answers DHCP here.
        x.text("vpcId", &v.vpc_id)
            .text("ownerId", &v.owner_id)
            .text("state", "available")
            .text("cidrBlock", &v.cidr)
            .text("dhcpOptionsId", "default")
            .text("instanceTenancy", "default")
            .value("isDefault", true);
        x.list("cidrBlockAssociationSet", [()], |x, ()| {
            x.text("associationId", &cidr_association_id(&v.vpc_id))
                .text("cidrBlock", &v.cidr)
                .open("cidrBlockState")
                .text("state", "associated")
                .close("cidrBlockState");
        });
        x.open("ipv6CidrBlockAssociationSet")
            .close("ipv6CidrBlockAssociationSet");
        if !own.is_empty() {
            x.list("tagSet", &own, |x, (k, v)| {
                x.text("key", k).text("value", v);
            });
        }
    });
    Ok(cx.finish(x))
}

/// The id of the VPC's one CIDR association: the VPC's hex digits, so it
/// is as stable as the VPC's id.
fn cidr_association_id(vpc_id: &str) -> String {
    format!(
        "vpc-cidr-assoc-{}",
        vpc_id.strip_prefix("vpc-").unwrap_or(vpc_id)
    )
}

/// DescribeVpcAttribute: DNS support and DNS host names are on (the
/// network's dnsmasq resolves and names instances).
pub async fn describe_vpc_attribute(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let vpc_id = cx.params.required("VpcId")?.to_owned();
    well_formed(
        std::slice::from_ref(&vpc_id),
        "vpc",
        "InvalidVpcID.Malformed",
    )?;
    let attribute = cx.params.required("Attribute")?;
    let value = match attribute {
        "enableDnsSupport" | "enableDnsHostnames" => true,
        "enableNetworkAddressUsageMetrics" => false,
        other => {
            return Err(Ec2Error::invalid(format!(
                "Value ({}) for parameter attribute is invalid. Unknown attribute.",
                shown(other)
            )));
        }
    };
    if vpc_id != ids::default_vpc_id(&cx.caller.project_id) {
        return Err(vpc_not_found(&vpc_id));
    }
    let mut x = cx.response();
    x.text("vpcId", &vpc_id)
        .open(attribute)
        .value("value", value)
        .close(attribute);
    Ok(cx.finish(x))
}

/// Addresses left for instances: the network's, less those the project's
/// live instances hold.
async fn available_addresses(cx: &Ctx<'_>, vpc: &DefaultVpc) -> Result<u64, Ec2Error> {
    let held = cx
        .cloud
        .db
        .instances(&cx.caller.project_id, None)
        .await?
        .iter()
        .filter(|i| i.fixed_ip.is_some() && i.state != InstanceState::Terminated)
        .count();
    Ok(vpc
        .instance_addresses()
        .saturating_sub(u64::try_from(held).unwrap_or(u64::MAX)))
}

/// DescribeSubnets: one default subnet per availability zone.
pub async fn describe_subnets(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let wanted_ids = cx.params.list("SubnetId")?;
    well_formed(&wanted_ids, "subnet", "InvalidSubnetID.Malformed")?;
    let wanted = filters::parse(cx.params, SUBNET_FILTERS)?;
    let project = &cx.caller.project_id;
    let subnets = vpcs::default_subnets(project, &zones(cx).await);
    all_found(
        &wanted_ids,
        |id| subnets.iter().any(|s| &s.subnet_id == id),
        subnet_not_found,
    )?;
    let vpc = vpcs::default_vpc(cx.cloud, &cx.rpc_context(), project).await?;
    let on_launch = cx.cloud.config.public.as_ref().is_some_and(|p| p.on_launch);
    let available = available_addresses(cx, &vpc).await?;
    let all_tags = cx.cloud.db.tags(project, None).await?;
    let chosen: Vec<(&DefaultSubnet, Vec<(String, String)>)> = subnets
        .iter()
        .filter(|s| wanted_ids.is_empty() || wanted_ids.contains(&s.subnet_id))
        .map(|s| (s, tags::of(&all_tags, &s.subnet_id)))
        .filter(|(s, own)| {
            filters::matches(&wanted, own, |n| match n {
                "subnet-id" => vec![s.subnet_id.clone()],
                "vpc-id" => vec![vpc.vpc_id.clone()],
                "availability-zone" | "availability-zone-id" => vec![s.zone.clone()],
                "default-for-az" | "defaultForAz" => vec!["true".into()],
                "cidr-block" | "cidr" | "cidrBlock" => vec![vpc.cidr.clone()],
                "state" => vec!["available".into()],
                "map-public-ip-on-launch" => vec![on_launch.to_string()],
                "owner-id" => vec![vpc.owner_id.clone()],
                _ => vec![],
            })
        })
        .collect();
    let region = &cx.cloud.config.region;
    let mut x = cx.response();
    x.list("subnetSet", chosen, |x, (s, own)| {
        x.text("subnetId", &s.subnet_id)
            .text(
                "subnetArn",
                &format!(
                    "arn:aws:ec2:{region}:{}:subnet/{}",
                    vpc.owner_id, s.subnet_id
                ),
            )
            .text("state", "available")
            .text("vpcId", &vpc.vpc_id)
            .text("ownerId", &vpc.owner_id)
            .text("cidrBlock", &vpc.cidr)
            .value("availableIpAddressCount", available)
            .text("availabilityZone", &s.zone)
            .text("availabilityZoneId", &s.zone)
            .value("defaultForAz", true)
            .value("mapPublicIpOnLaunch", on_launch)
            .value("mapCustomerOwnedIpOnLaunch", false)
            .value("assignIpv6AddressOnCreation", false)
            .value("enableDns64", false)
            .value("ipv6Native", false)
            .open("ipv6CidrBlockAssociationSet")
            .close("ipv6CidrBlockAssociationSet")
            .open("privateDnsNameOptionsOnLaunch")
            .text("hostnameType", "ip-name")
            .value("enableResourceNameDnsARecord", false)
            .value("enableResourceNameDnsAAAARecord", false)
            .close("privateDnsNameOptionsOnLaunch");
        if !own.is_empty() {
            x.list("tagSet", &own, |x, (k, v)| {
                x.text("key", k).text("value", v);
            });
        }
    });
    Ok(cx.finish(x))
}

/// Actions that would make or change VPCs, subnets, gateways or route
/// tables: each project has exactly its one default VPC.
pub const REFUSED: &[&str] = &[
    "CreateVpc",
    "DeleteVpc",
    "ModifyVpcAttribute",
    "AssociateVpcCidrBlock",
    "DisassociateVpcCidrBlock",
    "CreateDefaultVpc",
    "CreateSubnet",
    "DeleteSubnet",
    "CreateDefaultSubnet",
    "ModifySubnetAttribute",
    "CreateInternetGateway",
    "AttachInternetGateway",
    "DetachInternetGateway",
    "DeleteInternetGateway",
    "CreateRouteTable",
    "DeleteRouteTable",
    "CreateRoute",
    "AssociateRouteTable",
    "CreateNatGateway",
    "CreateDhcpOptions",
    "AssociateDhcpOptions",
    "CreateNetworkInterface",
    "DeleteNetworkInterface",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
];

/// Answers one of [`REFUSED`]: `DefaultVpcAlreadyExists` for
/// CreateDefaultVpc (as EC2 answers when there is one), else
/// `UnsupportedOperation` saying why.
pub async fn refuse(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let vpc_id = ids::default_vpc_id(&cx.caller.project_id);
    if cx.action == "CreateDefaultVpc" {
        return Err(Ec2Error::client(
            "DefaultVpcAlreadyExists",
            format!("A Default VPC already exists for this account in this region: {vpc_id}."),
        ));
    }
    Err(Ec2Error::client(
        "UnsupportedOperation",
        format!(
            "{} is not supported: stratus gives each project exactly one default VPC \
             ({vpc_id}) with one default subnet per availability zone, and they cannot be \
             created, changed or deleted.",
            cx.action
        ),
    ))
}
