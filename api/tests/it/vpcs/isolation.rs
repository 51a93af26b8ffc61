//! Each project sees its own VPC, subnets and interfaces only: another
//! project's ids are not found, and filters on them find nothing.

use stratus_api::ec2::ids;

use super::alpha_vpc;
use super::interfaces::placed;
use crate::endpoint::network::WithNetwork;

#[tokio::test]
async fn beta_never_sees_alphas_vpc_subnets_or_interfaces() {
    let cloud = WithNetwork::start().await;
    let (instance, uuid) = placed(&cloud, "10.1.0.7").await;
    let alpha_eni = ids::network_interface_id(&uuid);
    let alpha_subnet = ids::default_subnet_id("alpha", "nova");
    // Alpha's network made first.
    cloud.call("DescribeVpcs", &[]).await.ok();
    let beta = cloud.keys("beta").await;

    let vpcs = cloud.call_as(&beta, "DescribeVpcs", &[]).await.ok();
    let beta_vpc = ids::default_vpc_id("beta");
    assert_ne!(beta_vpc, alpha_vpc());
    assert_eq!(vpcs.texts("vpcId"), [beta_vpc.as_str()]);
    assert_eq!(vpcs.texts("cidrBlock"), ["10.1.1.0/24", "10.1.1.0/24"]);
    assert_eq!(vpcs.texts("ownerId"), [ids::account_id("beta")]);
    cloud
        .call_as(&beta, "DescribeVpcs", &[("VpcId.1", &alpha_vpc())])
        .await
        .refused(400, "InvalidVpcID.NotFound");
    cloud
        .call_as(
            &beta,
            "DescribeVpcAttribute",
            &[("VpcId", &alpha_vpc()), ("Attribute", "enableDnsSupport")],
        )
        .await
        .refused(400, "InvalidVpcID.NotFound");
    cloud
        .call_as(
            &beta,
            "CreateSecurityGroup",
            &[
                ("GroupName", "web"),
                ("GroupDescription", "web"),
                ("VpcId", &alpha_vpc()),
            ],
        )
        .await
        .refused(400, "InvalidVpcID.NotFound");

    let alpha_vpc = alpha_vpc();
    let on_alphas = [
        ("Filter.1.Name", "vpc-id"),
        ("Filter.1.Value.1", alpha_vpc.as_str()),
    ];
    for action in [
        "DescribeVpcs",
        "DescribeSubnets",
        "DescribeNetworkInterfaces",
        "DescribeInstances",
        "DescribeSecurityGroups",
    ] {
        let answer = cloud.call_as(&beta, action, &on_alphas).await.ok();
        for element in [
            "vpcId",
            "subnetId",
            "networkInterfaceId",
            "instanceId",
            "groupId",
        ] {
            assert!(
                answer.texts(element).is_empty(),
                "{action}: {}",
                answer.body
            );
        }
    }

    let subnets = cloud.call_as(&beta, "DescribeSubnets", &[]).await.ok();
    assert_eq!(
        subnets.texts("subnetId"),
        [ids::default_subnet_id("beta", "nova")]
    );
    cloud
        .call_as(&beta, "DescribeSubnets", &[("SubnetId.1", &alpha_subnet)])
        .await
        .refused(400, "InvalidSubnetID.NotFound");

    let interfaces = cloud
        .call_as(&beta, "DescribeNetworkInterfaces", &[])
        .await
        .ok();
    assert!(interfaces.texts("networkInterfaceId").is_empty());
    cloud
        .call_as(
            &beta,
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &alpha_eni)],
        )
        .await
        .refused(400, "InvalidNetworkInterfaceID.NotFound");
    let by_instance = cloud
        .call_as(
            &beta,
            "DescribeNetworkInterfaces",
            &[
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", &instance),
            ],
        )
        .await
        .ok();
    assert!(by_instance.texts("networkInterfaceId").is_empty());

    let attributes = cloud
        .call_as(
            &beta,
            "DescribeAccountAttributes",
            &[("AttributeName.1", "default-vpc")],
        )
        .await
        .ok();
    assert_eq!(attributes.texts("attributeValue"), [beta_vpc]);
}
