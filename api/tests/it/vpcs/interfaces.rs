//! Instances in the default VPC: their VPC, subnet and primary interface on
//! DescribeInstances, and the interfaces DescribeNetworkInterfaces lists.

use stratus_api::ec2::ids;
use stratus_rpc::wire::ids::InstanceId;

use super::alpha_vpc;
use crate::endpoint::network::WithNetwork;

/// Launches one instance as alpha and places it at `ip` in zone `nova`:
/// (EC2 id, UUID).
pub async fn placed(cloud: &WithNetwork, ip: &str) -> (String, String) {
    let ami = cloud.register_image("tiny").await;
    let run = cloud.run_one(&ami, &[]).await.ok();
    let ec2_id = run.texts("instanceId").remove(0);
    let rows = cloud
        .cloud
        .db
        .instances("alpha", Some(std::slice::from_ref(&ec2_id)))
        .await
        .expect("instances");
    let uuid = rows[0].uuid.clone();
    cloud
        .cloud
        .db
        .set_placement(&uuid, ip, "nova")
        .await
        .expect("placement");
    (ec2_id, uuid)
}

#[tokio::test]
async fn instances_show_their_vpc_subnet_and_primary_interface() {
    let cloud = WithNetwork::start().await;
    let (instance, uuid) = placed(&cloud, "10.1.0.7").await;
    let vpc = alpha_vpc();
    let subnet = ids::default_subnet_id("alpha", "nova");
    let eni = ids::network_interface_id(&uuid);
    let mac = uuid.parse::<InstanceId>().expect("uuid").mac().to_string();
    let described = cloud
        .call("DescribeInstances", &[("InstanceId.1", &instance)])
        .await
        .ok();
    // The instance's own and its interface's.
    assert_eq!(described.texts("vpcId"), [vpc.clone(), vpc.clone()]);
    assert_eq!(
        described.texts("subnetId"),
        [subnet.clone(), subnet.clone()]
    );
    assert_eq!(described.texts("networkInterfaceId"), [eni.as_str()]);
    assert_eq!(described.texts("attachmentId"), [ids::attachment_id(&uuid)]);
    assert_eq!(described.texts("macAddress"), [mac.as_str()]);
    assert_eq!(described.texts("deviceIndex"), ["0"]);
    assert_eq!(described.texts("deleteOnTermination"), ["true"]);
    assert_eq!(described.texts("sourceDestCheck"), ["true", "true"]);
    assert_eq!(described.texts("interfaceType"), ["interface"]);
    assert!(
        described
            .texts("privateIpAddress")
            .iter()
            .all(|a| a == "10.1.0.7")
    );

    for (name, value, found) in [
        ("vpc-id", vpc.as_str(), true),
        ("vpc-id", "vpc-00000000000000001", false),
        ("subnet-id", subnet.as_str(), true),
        ("subnet-id", "subnet-00000000000000001", false),
        ("network-interface.network-interface-id", eni.as_str(), true),
        (
            "network-interface.network-interface-id",
            "eni-00000000000000001",
            false,
        ),
        ("network-interface.mac-address", mac.as_str(), true),
    ] {
        let answer = cloud
            .call(
                "DescribeInstances",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        let want: Vec<String> = if found {
            vec![instance.clone()]
        } else {
            vec![]
        };
        assert_eq!(answer.texts("instanceId"), want, "{name}={value}");
    }
}

#[tokio::test]
async fn describe_network_interfaces_lists_primary_interfaces_by_id_and_filters() {
    let cloud = WithNetwork::start().await;
    let (instance, uuid) = placed(&cloud, "10.1.0.7").await;
    let (other, _) = placed(&cloud, "10.1.0.8").await;
    let eni = ids::network_interface_id(&uuid);
    let mac = uuid.parse::<InstanceId>().expect("uuid").mac().to_string();
    let group = cloud.default_group().await;

    let all = cloud.call("DescribeNetworkInterfaces", &[]).await.ok();
    assert_eq!(all.texts("networkInterfaceId").len(), 2);
    // Each interface's status, after its attachment's.
    assert_eq!(
        all.texts("status"),
        ["attached", "in-use", "attached", "in-use"]
    );
    let one = cloud
        .call(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &eni)],
        )
        .await
        .ok();
    assert_eq!(one.texts("networkInterfaceId"), [eni.as_str()]);
    assert_eq!(one.texts("instanceId"), [instance.as_str()]);
    assert_eq!(one.texts("instanceOwnerId"), [ids::account_id("alpha")]);
    assert_eq!(one.texts("macAddress"), [mac.as_str()]);
    assert_eq!(one.texts("primary"), ["true"]);
    assert_eq!(one.texts("groupId"), [group.as_str()]);
    assert_eq!(one.texts("availabilityZone"), ["nova"]);

    let vpc = alpha_vpc();
    let subnet = ids::default_subnet_id("alpha", "nova");
    for (name, value, want) in [
        ("network-interface-id", eni.as_str(), vec![instance.clone()]),
        (
            "attachment.instance-id",
            other.as_str(),
            vec![other.clone()],
        ),
        (
            "vpc-id",
            vpc.as_str(),
            vec![instance.clone(), other.clone()],
        ),
        ("vpc-id", "vpc-00000000000000001", vec![]),
        (
            "subnet-id",
            subnet.as_str(),
            vec![instance.clone(), other.clone()],
        ),
        ("private-ip-address", "10.1.0.8", vec![other.clone()]),
        (
            "addresses.private-ip-address",
            "10.1.0.7",
            vec![instance.clone()],
        ),
        (
            "group-id",
            group.as_str(),
            vec![instance.clone(), other.clone()],
        ),
        ("group-id", "sg-00000000000000001", vec![]),
        ("status", "in-use", vec![instance.clone(), other.clone()]),
        ("status", "available", vec![]),
        ("mac-address", mac.as_str(), vec![instance.clone()]),
        (
            "availability-zone",
            "nova",
            vec![instance.clone(), other.clone()],
        ),
        ("availability-zone", "zone-b", vec![]),
    ] {
        let answer = cloud
            .call(
                "DescribeNetworkInterfaces",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        let mut got = answer.texts("instanceId");
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{name}={value}");
    }
    cloud
        .call(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", "eni-00000000000000001")],
        )
        .await
        .refused(400, "InvalidNetworkInterfaceID.NotFound");
    cloud
        .call(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", "eni-zz")],
        )
        .await
        .refused(400, "InvalidNetworkInterfaceID.Malformed");
    cloud
        .call(
            "DescribeNetworkInterfaces",
            &[("Filter.1.Name", "color"), ("Filter.1.Value.1", "red")],
        )
        .await
        .refused(400, "InvalidParameterValue");
}
