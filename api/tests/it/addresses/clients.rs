//! The requests apache-libcloud's EC2 driver sends, unchanged: no Domain
//! on AllocateAddress (it means standard), PublicIp everywhere, filters
//! numbered from 0, and a move without AllowReassociation.

use super::{Public, listed, pub_ip};

#[tokio::test]
async fn libcloud_shaped_requests_allocate_move_disassociate_and_release() {
    let cloud = Public::start().await;
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
