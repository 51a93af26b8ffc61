//! The default VPC through the EC2 endpoint: DescribeVpcs, DescribeSubnets,
//! DescribeVpcAttribute, DescribeAccountAttributes, DescribeNetworkInterfaces,
//! the VPC on instances and groups, the refused VPC actions, and each
//! project seeing its own only. The stand-in network host
//! (`endpoint::network`) answers `project_network` with a /24 per project
//! and counts the asks.

pub mod interfaces;
mod isolation;

use stratus_api::ec2::ids;

use crate::endpoint::Endpoint;
use crate::endpoint::network::WithNetwork;

/// Alpha's default VPC id.
pub fn alpha_vpc() -> String {
    ids::default_vpc_id("alpha")
}

#[tokio::test]
async fn the_default_vpc_is_the_project_network_asked_once_then_cached() {
    let mut cloud = WithNetwork::start().await;
    let vpcs = cloud.call("DescribeVpcs", &[]).await.ok();
    assert_eq!(vpcs.texts("vpcId"), [alpha_vpc()]);
    // The CIDR twice: the VPC's and its one association's.
    assert_eq!(vpcs.texts("cidrBlock"), ["10.1.0.0/24", "10.1.0.0/24"]);
    assert_eq!(vpcs.texts("isDefault"), ["true"]);
    assert_eq!(vpcs.texts("state"), ["available", "associated"]);
    assert_eq!(vpcs.texts("ownerId"), [ids::account_id("alpha")]);
    assert_eq!(vpcs.texts("instanceTenancy"), ["default"]);
    assert_eq!(vpcs.texts("dhcpOptionsId"), ["default"]);
    assert_eq!(cloud.network.asks(), 1);

    // Cached: asked no more, even with the network host gone.
    cloud.stop_network();
    let again = cloud.endpoint.call("DescribeVpcs", &[]).await.ok();
    assert_eq!(again.texts("vpcId"), [alpha_vpc()]);
    let subnets = cloud.endpoint.call("DescribeSubnets", &[]).await.ok();
    assert_eq!(subnets.texts("cidrBlock"), ["10.1.0.0/24"]);
    assert_eq!(cloud.network.asks(), 1);
}

#[tokio::test]
async fn without_a_network_host_the_first_describe_is_unavailable() {
    let cloud = Endpoint::start().await;
    for action in ["DescribeVpcs", "DescribeSubnets"] {
        let refused = cloud.call(action, &[]).await.refused(503, "Unavailable");
        assert!(refused.body.contains("network host"), "{}", refused.body);
    }
    // What needs no CIDR still answers.
    let attributes = cloud.call("DescribeAccountAttributes", &[]).await.ok();
    assert!(attributes.texts("attributeValue").contains(&alpha_vpc()));
}

#[tokio::test]
async fn describe_vpcs_by_id_and_filters() {
    let cloud = WithNetwork::start().await;
    let vpc = alpha_vpc();
    let by_id = cloud.call("DescribeVpcs", &[("VpcId.1", &vpc)]).await.ok();
    assert_eq!(by_id.texts("vpcId"), [vpc.as_str()]);
    let account = ids::account_id("alpha");
    for (name, value, found) in [
        ("vpc-id", vpc.as_str(), true),
        ("vpc-id", "vpc-00000000000000001", false),
        ("is-default", "true", true),
        ("is-default", "false", false),
        // As amazon.aws's ec2_instance asks for the default VPC.
        ("isDefault", "true", true),
        ("cidr", "10.1.0.0/24", true),
        ("cidr-block-association.cidr-block", "10.1.*", true),
        ("cidr", "192.168.0.0/16", false),
        ("state", "available", true),
        ("state", "pending", false),
        ("owner-id", account.as_str(), true),
        ("owner-id", "000000000000", false),
        ("dhcp-options-id", "default", true),
        ("tag:Name", "x", false),
    ] {
        let answer = cloud
            .call(
                "DescribeVpcs",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        let want: Vec<String> = if found { vec![vpc.clone()] } else { vec![] };
        assert_eq!(answer.texts("vpcId"), want, "{name}={value}");
    }
    cloud
        .call("DescribeVpcs", &[("VpcId.1", "vpc-00000000000000001")])
        .await
        .refused(400, "InvalidVpcID.NotFound");
    cloud
        .call("DescribeVpcs", &[("VpcId.1", "vpc-nothex")])
        .await
        .refused(400, "InvalidVpcID.Malformed");
    cloud
        .call(
            "DescribeVpcs",
            &[("Filter.1.Name", "color"), ("Filter.1.Value.1", "red")],
        )
        .await
        .refused(400, "InvalidParameterValue");
}

#[tokio::test]
async fn describe_vpc_attribute_answers_dns_on() {
    let cloud = WithNetwork::start().await;
    let vpc = alpha_vpc();
    for attribute in ["enableDnsSupport", "enableDnsHostnames"] {
        let answer = cloud
            .call(
                "DescribeVpcAttribute",
                &[("VpcId", &vpc), ("Attribute", attribute)],
            )
            .await
            .ok();
        assert_eq!(answer.texts("vpcId"), [vpc.as_str()]);
        assert_eq!(answer.texts("value"), ["true"], "{attribute}");
        assert!(
            answer.body.contains(&format!("<{attribute}>")),
            "{}",
            answer.body
        );
    }
    cloud
        .call(
            "DescribeVpcAttribute",
            &[("VpcId", &vpc), ("Attribute", "colour")],
        )
        .await
        .refused(400, "InvalidParameterValue");
    cloud
        .call(
            "DescribeVpcAttribute",
            &[
                ("VpcId", "vpc-00000000000000001"),
                ("Attribute", "enableDnsSupport"),
            ],
        )
        .await
        .refused(400, "InvalidVpcID.NotFound");
    cloud
        .call("DescribeVpcAttribute", &[("VpcId", &vpc)])
        .await
        .refused(400, "MissingParameter");
}

#[tokio::test]
async fn one_default_subnet_per_zone_with_the_vpc_cidr() {
    let cloud = WithNetwork::start().await;
    let subnet = ids::default_subnet_id("alpha", "nova");
    let all = cloud.call("DescribeSubnets", &[]).await.ok();
    // The stand-in scheduler knows no hosts: the one zone is `nova`.
    assert_eq!(all.texts("subnetId"), [subnet.as_str()]);
    assert_eq!(all.texts("vpcId"), [alpha_vpc()]);
    assert_eq!(all.texts("availabilityZone"), ["nova"]);
    assert_eq!(all.texts("defaultForAz"), ["true"]);
    assert_eq!(all.texts("mapPublicIpOnLaunch"), ["false"]);
    // A /24 less network, broadcast, gateway and DHCP server.
    assert_eq!(all.texts("availableIpAddressCount"), ["252"]);
    let account = ids::account_id("alpha");
    assert_eq!(
        all.texts("subnetArn"),
        [format!(
            "arn:aws:ec2:{}:{account}:subnet/{subnet}",
            cloud.cloud.config.region
        )]
    );
    for (name, value, found) in [
        ("subnet-id", subnet.as_str(), true),
        ("vpc-id", alpha_vpc().as_str(), true),
        ("vpc-id", "vpc-00000000000000001", false),
        ("availability-zone", "nova", true),
        ("availability-zone", "zone-b", false),
        ("default-for-az", "true", true),
        ("cidr-block", "10.1.0.0/24", true),
        ("cidr", "10.9.0.0/24", false),
        ("state", "available", true),
        ("map-public-ip-on-launch", "false", true),
        ("map-public-ip-on-launch", "true", false),
        ("owner-id", account.as_str(), true),
        ("tag-key", "Name", false),
    ] {
        let answer = cloud
            .call(
                "DescribeSubnets",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        let want: Vec<String> = if found { vec![subnet.clone()] } else { vec![] };
        assert_eq!(answer.texts("subnetId"), want, "{name}={value}");
    }
    let by_id = cloud
        .call("DescribeSubnets", &[("SubnetId.1", &subnet)])
        .await
        .ok();
    assert_eq!(by_id.texts("subnetId"), [subnet]);
    cloud
        .call(
            "DescribeSubnets",
            &[("SubnetId.1", "subnet-00000000000000001")],
        )
        .await
        .refused(400, "InvalidSubnetID.NotFound");
    cloud
        .call("DescribeSubnets", &[("SubnetId.1", "subnet-x")])
        .await
        .refused(400, "InvalidSubnetID.Malformed");
}

#[tokio::test]
async fn subnets_map_public_ips_on_launch_as_the_cloud_does() {
    let endpoint = Endpoint::start_with(
        |c| {
            c.public = Some(stratus_api::config::PublicAddressing {
                range: "172.24.4.0/29".parse().expect("range"),
                on_launch: true,
                dns_domain: "compute.stratus".into(),
            });
        },
        None,
    )
    .await;
    let cloud = WithNetwork::serving(endpoint).await;
    let all = cloud.call("DescribeSubnets", &[]).await.ok();
    assert_eq!(all.texts("mapPublicIpOnLaunch"), ["true"]);
}

#[tokio::test]
async fn account_attributes_name_the_default_vpc_and_vpc_only() {
    let cloud = WithNetwork::start().await;
    let answer = cloud
        .call(
            "DescribeAccountAttributes",
            &[
                ("AttributeName.1", "default-vpc"),
                ("AttributeName.2", "supported-platforms"),
            ],
        )
        .await
        .ok();
    assert_eq!(
        answer.texts("attributeName"),
        ["supported-platforms", "default-vpc"]
    );
    assert_eq!(
        answer.texts("attributeValue"),
        ["VPC".to_owned(), alpha_vpc()]
    );
}

#[tokio::test]
async fn vpc_and_subnet_changes_are_refused_with_a_reason() {
    let cloud = WithNetwork::start().await;
    for (action, params) in [
        ("CreateVpc", vec![("CidrBlock", "10.9.0.0/16")]),
        ("DeleteVpc", vec![("VpcId", "vpc-00000000000000001")]),
        (
            "CreateSubnet",
            vec![
                ("VpcId", "vpc-00000000000000001"),
                ("CidrBlock", "10.9.0.0/24"),
            ],
        ),
        (
            "DeleteSubnet",
            vec![("SubnetId", "subnet-00000000000000001")],
        ),
        ("CreateDefaultSubnet", vec![("AvailabilityZone", "nova")]),
        (
            "ModifyVpcAttribute",
            vec![("VpcId", "vpc-00000000000000001")],
        ),
        (
            "ModifySubnetAttribute",
            vec![("SubnetId", "subnet-00000000000000001")],
        ),
        (
            "AssociateVpcCidrBlock",
            vec![("VpcId", "vpc-00000000000000001")],
        ),
        ("CreateInternetGateway", vec![]),
        ("CreateRouteTable", vec![("VpcId", "vpc-00000000000000001")]),
    ] {
        let refused = cloud
            .call(action, &params)
            .await
            .refused(400, "UnsupportedOperation");
        assert!(
            refused.body.contains("one default VPC"),
            "{action}: {}",
            refused.body
        );
    }
    let refused = cloud
        .call("CreateDefaultVpc", &[])
        .await
        .refused(400, "DefaultVpcAlreadyExists");
    assert!(refused.body.contains(&alpha_vpc()), "{}", refused.body);
}

#[tokio::test]
async fn security_groups_are_in_the_default_vpc() {
    let cloud = WithNetwork::start().await;
    let vpc = alpha_vpc();
    let made = cloud
        .call(
            "CreateSecurityGroup",
            &[
                ("GroupName", "web"),
                ("GroupDescription", "web"),
                ("VpcId", &vpc),
            ],
        )
        .await
        .ok();
    let web = made.texts("groupId").remove(0);
    cloud
        .call(
            "CreateSecurityGroup",
            &[
                ("GroupName", "db"),
                ("GroupDescription", "db"),
                ("VpcId", "vpc-00000000000000001"),
            ],
        )
        .await
        .refused(400, "InvalidVpcID.NotFound");
    let groups = cloud.call("DescribeSecurityGroups", &[]).await.ok();
    assert_eq!(groups.texts("groupName"), ["default", "web"]);
    assert_eq!(groups.texts("vpcId"), [vpc.clone(), vpc.clone()]);
    let filtered = cloud
        .call(
            "DescribeSecurityGroups",
            &[
                ("Filter.1.Name", "vpc-id"),
                ("Filter.1.Value.1", &vpc),
                ("Filter.2.Name", "group-name"),
                ("Filter.2.Value.1", "web"),
            ],
        )
        .await
        .ok();
    assert_eq!(filtered.texts("groupId"), [web]);
    let none = cloud
        .call(
            "DescribeSecurityGroups",
            &[
                ("Filter.1.Name", "vpc-id"),
                ("Filter.1.Value.1", "vpc-00000000000000001"),
            ],
        )
        .await
        .ok();
    assert!(none.texts("groupId").is_empty());
}
