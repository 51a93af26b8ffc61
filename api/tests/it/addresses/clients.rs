//! The requests apache-libcloud's EC2 driver sends, unchanged: no Domain
//! on AllocateAddress (it means standard), PublicIp everywhere, filters
//! numbered from 0, and a move without AllowReassociation.

use super::{listed, pub_ip};
use crate::endpoint::network::WithNetwork;

#[tokio::test]
async fn libcloud_shaped_requests_allocate_move_disassociate_and_release() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let one = cloud.launch(&ami, &[]).await;
    let two = cloud.launch(&ami, &[]).await;

    // ex_allocate_address(): no Domain.
    let allocated = cloud.call("AllocateAddress", &[]).await.ok();
    assert_eq!(allocated.texts("domain"), ["standard"]);
    let elastic = allocated.texts("publicIp").remove(0);
    assert_eq!(elastic, pub_ip(4));

    // ex_associate_address_with_node(node, ip): PublicIp, twice, moving.
    for instance in [&one, &two] {
        let associated = cloud
            .call(
                "AssociateAddress",
                &[("InstanceId", instance), ("PublicIp", &elastic)],
            )
            .await
            .ok();
        assert_eq!(
            associated.texts("associationId").len(),
            1,
            "{}",
            associated.body
        );
        assert_eq!(
            cloud.ip_of(instance).await.as_deref(),
            Some(elastic.as_str())
        );
    }
    // The first got a fresh launch address back.
    assert!(cloud.ip_of(&one).await.is_some_and(|ip| ip != elastic));

    // ex_describe_addresses([node]): Filter.0.Name / Filter.0.Value.0.
    let for_two = cloud
        .call(
            "DescribeAddresses",
            &[("Filter.0.Name", "instance-id"), ("Filter.0.Value.0", &two)],
        )
        .await
        .ok();
    assert_eq!(listed(&for_two), std::slice::from_ref(&elastic));
    assert_eq!(for_two.texts("instanceId"), std::slice::from_ref(&two));
    let for_one = cloud
        .call(
            "DescribeAddresses",
            &[("Filter.0.Name", "instance-id"), ("Filter.0.Value.0", &one)],
        )
        .await
        .ok();
    assert!(listed(&for_one).is_empty(), "{}", for_one.body);

    // ex_disassociate_address(ip) and ex_release_address(ip): PublicIp.
    cloud
        .call("DisassociateAddress", &[("PublicIp", &elastic)])
        .await
        .ok();
    assert!(cloud.ip_of(&two).await.is_some_and(|ip| ip != elastic));
    cloud
        .call("ReleaseAddress", &[("PublicIp", &elastic)])
        .await
        .ok();
    assert!(listed(&cloud.call("DescribeAddresses", &[]).await.ok()).is_empty());
}

/// `body` with its request id and the given ids replaced by stable names,
/// one element a line.
fn stable(body: &str, ids: &[(&str, &str)]) -> String {
    let mut out = body.to_owned();
    for request_id in crate::xml_doc::texts(body, "requestId") {
        out = out.replace(&request_id, "REQUEST-ID");
    }
    for (id, name) in ids {
        out = out.replace(id, name);
    }
    out.replace("><", ">\n<")
}

#[tokio::test]
async fn describe_addresses_renders_as_its_golden_file() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let instance = cloud
        .launch(
            &ami,
            &[("NetworkInterface.1.AssociatePublicIpAddress", "false")],
        )
        .await;
    let (associated, first) = cloud.allocate(&[("Domain", "vpc")]).await;
    let (_, second) = cloud.allocate(&[]).await;
    let association = cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &first), ("InstanceId", &instance)],
        )
        .await
        .ok()
        .texts("associationId")
        .remove(0);
    assert_eq!(associated, pub_ip(2));
    let described = cloud.call("DescribeAddresses", &[]).await.ok();
    stratus_test_support::golden!(
        "describe-addresses.xml",
        &stable(
            &described.body,
            &[
                (first.as_str(), "eipalloc-00000000000000001"),
                (second.as_str(), "eipalloc-00000000000000002"),
                (association.as_str(), "eipassoc-00000000000000001"),
                (instance.as_str(), "i-00000000000000001"),
            ],
        )
    );
}
