//! Project B cannot describe, associate, disassociate or release project
//! A's addresses: each attempt is answered "not found", and A's address is
//! as it was afterwards.

use super::listed;
use crate::endpoint::network::WithNetwork;

#[tokio::test]
async fn another_project_can_neither_see_nor_touch_an_address() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let a_instance = cloud.launch(&ami, &[]).await;
    let (address, allocation) = cloud.allocate(&[("Domain", "standard")]).await;
    let association = cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &a_instance)],
        )
        .await
        .ok()
        .texts("associationId")
        .remove(0);
    let before = shown(&cloud).await;
    // The launch's push (in the background) and the association's.
    cloud.network.settled(2).await;
    let pushes = cloud.network.maps().len();

    let beta = cloud.keys("beta").await;
    // B's own image and instance.
    let disk = cloud.images.join("disk.img").display().to_string();
    let b_ami = cloud
        .call_as(
            &beta,
            "RegisterImage",
            &[("Name", "tiny-b"), ("ImageLocation", &disk)],
        )
        .await
        .ok()
        .texts("imageId")
        .remove(0);
    let b_instance = cloud
        .call_as(
            &beta,
            "RunInstances",
            &[
                ("ImageId", &b_ami),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "m1.tiny"),
                ("NetworkInterface.1.AssociatePublicIpAddress", "false"),
            ],
        )
        .await
        .ok()
        .texts("instanceId")
        .remove(0);
    let (b_address, b_allocation) = {
        let a = cloud.call_as(&beta, "AllocateAddress", &[]).await.ok();
        (
            a.texts("publicIp").remove(0),
            a.texts("allocationId").remove(0),
        )
    };
    assert_ne!(b_address, address);

    // Describe: not listed, and asked by name, not found.
    let described = cloud.call_as(&beta, "DescribeAddresses", &[]).await.ok();
    assert_eq!(listed(&described), std::slice::from_ref(&b_address));
    assert!(!described.body.contains(&address));
    cloud
        .call_as(&beta, "DescribeAddresses", &[("PublicIp.1", &address)])
        .await
        .refused(400, "InvalidAddress.NotFound");
    cloud
        .call_as(
            &beta,
            "DescribeAddresses",
            &[("AllocationId.1", &allocation)],
        )
        .await
        .refused(400, "InvalidAllocationID.NotFound");
    for (name, value) in [
        ("public-ip", address.as_str()),
        ("instance-id", a_instance.as_str()),
    ] {
        let filtered = cloud
            .call_as(
                &beta,
                "DescribeAddresses",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        assert!(listed(&filtered).is_empty(), "{name}: {}", filtered.body);
    }

    // Associate: A's address to B's instance, with and without moving.
    for (params, code) in [
        (
            vec![
                ("AllocationId", allocation.as_str()),
                ("InstanceId", b_instance.as_str()),
            ],
            "InvalidAllocationID.NotFound",
        ),
        (
            vec![
                ("PublicIp", address.as_str()),
                ("InstanceId", b_instance.as_str()),
                ("AllowReassociation", "true"),
            ],
            "InvalidAddress.NotFound",
        ),
        // B's own address to A's instance.
        (
            vec![
                ("AllocationId", b_allocation.as_str()),
                ("InstanceId", a_instance.as_str()),
            ],
            "InvalidInstanceID.NotFound",
        ),
    ] {
        cloud
            .call_as(&beta, "AssociateAddress", &params)
            .await
            .refused(400, code);
    }
    // Disassociate and release, by every name.
    cloud
        .call_as(
            &beta,
            "DisassociateAddress",
            &[("AssociationId", &association)],
        )
        .await
        .refused(400, "InvalidAssociationID.NotFound");
    cloud
        .call_as(&beta, "DisassociateAddress", &[("PublicIp", &address)])
        .await
        .refused(400, "InvalidAddress.NotFound");
    cloud
        .call_as(&beta, "ReleaseAddress", &[("AllocationId", &allocation)])
        .await
        .refused(400, "InvalidAllocationID.NotFound");
    cloud
        .call_as(&beta, "ReleaseAddress", &[("PublicIp", &address)])
        .await
        .refused(400, "InvalidAddress.NotFound");

    // A's address is as it was, and the network host was told nothing.
    assert_eq!(shown(&cloud).await, before);
    assert_eq!(cloud.ip_of(&a_instance).await, Some(address));
    let new_pushes: Vec<_> = cloud.network.maps().into_iter().skip(pushes).collect();
    assert!(new_pushes.is_empty(), "{new_pushes:?}");
}

/// What alpha's DescribeAddresses shows, field by field.
async fn shown(cloud: &WithNetwork) -> Vec<Vec<String>> {
    let described = cloud.call("DescribeAddresses", &[]).await.ok();
    [
        "publicIp",
        "allocationId",
        "domain",
        "instanceId",
        "associationId",
    ]
    .iter()
    .map(|field| described.texts(field))
    .collect()
}
