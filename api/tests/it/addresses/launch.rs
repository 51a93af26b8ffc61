//! Launch addresses, association, moves, disassociation and release, and
//! what the network host is told of each.

use std::sync::atomic::Ordering;

use stratus_rpc::wire::addresses::PublicMapping;

use super::{listed, pub_ip};
use crate::endpoint::network::WithNetwork;

/// The UUID of alpha's instance `ec2_id`.
async fn uuid(cloud: &WithNetwork, ec2_id: &str) -> String {
    let rows = cloud
        .cloud
        .db
        .instances("alpha", Some(&[ec2_id.to_owned()]))
        .await
        .expect("instances");
    rows[0].uuid.clone()
}

fn mapping(address: &str, uuid: &str) -> PublicMapping {
    PublicMapping {
        address: address.parse().expect("address"),
        instance_id: uuid.parse().expect("uuid"),
    }
}

#[tokio::test]
async fn a_launch_gets_an_address_shown_in_describe_instances_and_told_to_the_network() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let run = cloud.run_one(&ami, &[]).await.ok();
    assert_eq!(run.texts("ipAddress"), [pub_ip(2)]);
    assert_eq!(run.texts("dnsName"), ["ec2-172-24-4-2.compute.stratus"]);
    let instance = run.texts("instanceId").remove(0);
    let id = uuid(&cloud, &instance).await;

    let described = cloud
        .call("DescribeInstances", &[("InstanceId.1", &instance)])
        .await
        .ok();
    assert_eq!(described.texts("ipAddress"), [pub_ip(2)]);
    assert_eq!(
        described.texts("dnsName"),
        ["ec2-172-24-4-2.compute.stratus"]
    );
    for (filter, value, found) in [
        ("ip-address", "172.24.4.2", true),
        ("ip-address", "172.24.4.3", false),
        ("dns-name", "ec2-172-24-4-2.*", true),
    ] {
        let filtered = cloud
            .call(
                "DescribeInstances",
                &[("Filter.1.Name", filter), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        assert_eq!(
            filtered.texts("instanceId") == std::slice::from_ref(&instance),
            found,
            "{filter}={value}"
        );
    }

    // The compute host is told it (for the config drive).
    let runs = cloud.scheduler.runs(1).await;
    assert_eq!(runs[0]["instances"][0]["public_address"], "172.24.4.2");
    assert_eq!(
        runs[0]["instances"][0]["public_hostname"],
        "ec2-172-24-4-2.compute.stratus"
    );
    // The network host is told in the background.
    let told = cloud.network.wait_for(|m| !m.set.is_empty()).await;
    assert_eq!(told.set, [mapping(&pub_ip(2), &id)]);
    assert!(told.clear.is_empty());
    // A launch address is not an Elastic IP: not listed, not released.
    assert!(listed(&cloud.call("DescribeAddresses", &[]).await.ok()).is_empty());
    cloud
        .call("ReleaseAddress", &[("PublicIp", &pub_ip(2))])
        .await
        .refused(400, "InvalidAddress.NotFound");
    assert_eq!(cloud.ip_of(&instance).await, Some(pub_ip(2)));
}

#[tokio::test]
async fn a_launch_may_ask_for_no_address_and_other_interface_fields_are_refused() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let without = cloud
        .launch(
            &ami,
            &[
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.AssociatePublicIpAddress", "false"),
            ],
        )
        .await;
    assert_eq!(cloud.ip_of(&without).await, None);
    let runs = cloud.scheduler.runs(1).await;
    assert!(runs[0]["instances"][0].get("public_address").is_none());
    for extra in [
        vec![
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.Ipv6AddressCount", "1"),
        ],
        vec![("NetworkInterface.1.DeviceIndex", "1")],
        vec![
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.2.DeviceIndex", "1"),
        ],
    ] {
        cloud
            .run_one(&ami, &extra)
            .await
            .refused(400, "UnsupportedOperation");
    }
    cloud
        .run_one(
            &ami,
            &[("NetworkInterface.1.AssociatePublicIpAddress", "maybe")],
        )
        .await
        .refused(400, "InvalidParameterValue");
    let with = cloud
        .launch(
            &ami,
            &[("NetworkInterface.1.AssociatePublicIpAddress", "true")],
        )
        .await;
    assert_eq!(cloud.ip_of(&with).await, Some(pub_ip(2)));
}

#[tokio::test]
async fn an_exhausted_pool_launches_without_an_address() {
    // A /30: one address.
    let cloud = WithNetwork::public_with("172.24.4.0/30", 5).await;
    let ami = cloud.image().await;
    let first = cloud.launch(&ami, &[]).await;
    let second = cloud.launch(&ami, &[]).await;
    assert_eq!(cloud.ip_of(&first).await, Some(pub_ip(2)));
    assert_eq!(cloud.ip_of(&second).await, None);
}

#[tokio::test]
async fn terminate_frees_the_launch_address_and_disassociates_an_elastic_one() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let one = cloud.launch(&ami, &[]).await;
    let two = cloud.launch(&ami, &[]).await;
    assert_eq!(cloud.ip_of(&two).await, Some(pub_ip(3)));
    let (elastic, allocation) = cloud.allocate(&[]).await;
    cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &one)],
        )
        .await
        .ok();
    // Neither was placed on a host: terminating ends them at once.
    for instance in [&one, &two] {
        cloud
            .call("TerminateInstances", &[("InstanceId.1", instance)])
            .await
            .ok();
        assert_eq!(cloud.ip_of(instance).await, None);
    }
    let described = cloud.call("DescribeAddresses", &[]).await.ok();
    assert_eq!(listed(&described), std::slice::from_ref(&elastic));
    assert!(
        described.texts("instanceId").is_empty(),
        "{}",
        described.body
    );
    assert!(described.texts("associationId").is_empty());
    // The network host is told each one is cleared.
    cloud
        .network
        .wait_for(|m| m.clear == [pub_ip(3).parse::<std::net::Ipv4Addr>().expect("ip")])
        .await;
    cloud
        .network
        .wait_for(|m| {
            m.clear == [elastic.parse::<std::net::Ipv4Addr>().expect("ip")] && m.set.is_empty()
        })
        .await;
    // Both launch addresses are back in the pool.
    assert_eq!(cloud.allocate(&[]).await.0, pub_ip(2));
    assert_eq!(cloud.allocate(&[]).await.0, pub_ip(3));
    // An address cannot go to a terminated instance.
    cloud
        .call(
            "AssociateAddress",
            &[("PublicIp", &elastic), ("InstanceId", &one)],
        )
        .await
        .refused(400, "IncorrectInstanceState");
}

#[tokio::test]
async fn association_replaces_the_launch_address_and_reassociation_moves() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let one = cloud.launch(&ami, &[]).await;
    let two = cloud.launch(&ami, &[]).await;
    let (one_id, two_id) = (uuid(&cloud, &one).await, uuid(&cloud, &two).await);
    // The launches' pushes (in the background) come first.
    cloud.network.settled(2).await;
    let (elastic, allocation) = cloud.allocate(&[("Domain", "vpc")]).await;
    assert_eq!(elastic, pub_ip(4));

    let associated = cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &one)],
        )
        .await
        .ok();
    let association = associated.texts("associationId").remove(0);
    assert!(
        stratus_api::ec2::ids::is_id("eipassoc", &association),
        "{association}"
    );
    assert_eq!(cloud.ip_of(&one).await, Some(elastic.clone()));
    let told = cloud.network.maps().pop().expect("a change");
    assert_eq!(told.set, [mapping(&elastic, &one_id)]);
    assert_eq!(
        told.clear,
        [pub_ip(2).parse::<std::net::Ipv4Addr>().expect("ip")]
    );

    let described = cloud.call("DescribeAddresses", &[]).await.ok();
    assert_eq!(described.texts("instanceId"), std::slice::from_ref(&one));
    assert_eq!(
        described.texts("associationId"),
        std::slice::from_ref(&association)
    );
    for (name, value) in [
        ("instance-id", one.as_str()),
        ("association-id", association.as_str()),
    ] {
        let filtered = cloud
            .call(
                "DescribeAddresses",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        assert_eq!(listed(&filtered), std::slice::from_ref(&elastic), "{name}");
    }

    // A vpc address associated elsewhere moves only when allowed.
    cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &two)],
        )
        .await
        .refused(400, "Resource.AlreadyAssociated");
    assert_eq!(cloud.ip_of(&one).await, Some(elastic.clone()));
    let moved = cloud
        .call(
            "AssociateAddress",
            &[
                ("PublicIp", &elastic),
                ("InstanceId", &two),
                ("AllowReassociation", "true"),
            ],
        )
        .await
        .ok();
    let moved_association = moved.texts("associationId").remove(0);
    assert_ne!(moved_association, association);
    assert_eq!(cloud.ip_of(&two).await, Some(elastic.clone()));
    // The first instance launched wanting an address: it gets a fresh one
    // (the lowest free, .2), the second's launch address (.3) is freed.
    assert_eq!(cloud.ip_of(&one).await, Some(pub_ip(2)));
    let told = cloud.network.maps().pop().expect("a change");
    let mut set = told.set.clone();
    set.sort();
    let mut want = vec![mapping(&elastic, &two_id), mapping(&pub_ip(2), &one_id)];
    want.sort();
    assert_eq!(set, want);
    assert_eq!(
        told.clear,
        [pub_ip(3).parse::<std::net::Ipv4Addr>().expect("ip")]
    );

    // The old association is gone; the new one disassociates.
    cloud
        .call("DisassociateAddress", &[("AssociationId", &association)])
        .await
        .refused(400, "InvalidAssociationID.NotFound");
    cloud
        .call(
            "DisassociateAddress",
            &[("AssociationId", &moved_association)],
        )
        .await
        .ok();
    assert_eq!(cloud.ip_of(&two).await, Some(pub_ip(3)));
    let told = cloud.network.maps().pop().expect("a change");
    assert_eq!(told.set, [mapping(&pub_ip(3), &two_id)]);
    assert_eq!(
        told.clear,
        [elastic.parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    let described = cloud.call("DescribeAddresses", &[]).await.ok();
    assert!(
        described.texts("instanceId").is_empty(),
        "{}",
        described.body
    );

    // Sequences grow with each change.
    let sequences: Vec<u64> = cloud.network.maps().iter().map(|m| m.sequence).collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]) || sequences.len() < 2,
        "{sequences:?}"
    );
}

#[tokio::test]
async fn releasing_an_associated_address() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let instance = cloud
        .launch(
            &ami,
            &[("NetworkInterface.1.AssociatePublicIpAddress", "false")],
        )
        .await;
    let (vpc, vpc_allocation) = cloud.allocate(&[("Domain", "vpc")]).await;
    let (standard, _) = cloud.allocate(&[("Domain", "standard")]).await;
    cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &vpc_allocation), ("InstanceId", &instance)],
        )
        .await
        .ok();
    // An associated vpc address must be disassociated first.
    cloud
        .call("ReleaseAddress", &[("AllocationId", &vpc_allocation)])
        .await
        .refused(400, "InvalidIPAddress.InUse");
    assert_eq!(cloud.ip_of(&instance).await, Some(vpc.clone()));
    // A standard one moves without AllowReassociation (as on EC2-Classic)
    // and is disassociated by its release.
    cloud
        .call(
            "AssociateAddress",
            &[("PublicIp", &standard), ("InstanceId", &instance)],
        )
        .await
        .ok();
    assert_eq!(cloud.ip_of(&instance).await, Some(standard.clone()));
    cloud
        .call("ReleaseAddress", &[("PublicIp", &standard)])
        .await
        .ok();
    let told = cloud.network.maps().pop().expect("a change");
    assert_eq!(
        told.clear,
        [standard.parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    // It launched without wanting one: it has none now.
    assert!(told.set.is_empty());
    assert_eq!(cloud.ip_of(&instance).await, None);
    assert_eq!(
        listed(&cloud.call("DescribeAddresses", &[]).await.ok()),
        [vpc]
    );
}

#[tokio::test]
async fn a_change_the_network_host_refuses_is_undone() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let instance = cloud.launch(&ami, &[]).await;
    cloud.network.wait_for(|m| !m.set.is_empty()).await;
    let (elastic, allocation) = cloud.allocate(&[("Domain", "standard")]).await;
    cloud.network.failing.store(true, Ordering::SeqCst);
    let refused = cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &instance)],
        )
        .await
        .refused(503, "Unavailable");
    assert!(refused.body.contains("network"), "{}", refused.body);
    // Nothing changed: the launch address stays, the Elastic IP is free.
    assert_eq!(cloud.ip_of(&instance).await, Some(pub_ip(2)));
    let described = cloud.call("DescribeAddresses", &[]).await.ok();
    assert!(
        described.texts("instanceId").is_empty(),
        "{}",
        described.body
    );

    cloud.network.failing.store(false, Ordering::SeqCst);
    let association = cloud
        .call(
            "AssociateAddress",
            &[("AllocationId", &allocation), ("InstanceId", &instance)],
        )
        .await
        .ok()
        .texts("associationId")
        .remove(0);
    cloud.network.failing.store(true, Ordering::SeqCst);
    for (action, params) in [
        (
            "DisassociateAddress",
            vec![("AssociationId", association.as_str())],
        ),
        ("ReleaseAddress", vec![("PublicIp", elastic.as_str())]),
    ] {
        cloud
            .call(action, &params)
            .await
            .refused(503, "Unavailable");
        assert_eq!(
            cloud.ip_of(&instance).await,
            Some(elastic.clone()),
            "{action}"
        );
        let described = cloud.call("DescribeAddresses", &[]).await.ok();
        assert_eq!(
            described.texts("associationId"),
            std::slice::from_ref(&association),
            "{action}"
        );
    }
}

#[tokio::test]
async fn unknown_addresses_and_instances_are_not_found() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let instance = cloud.launch(&ami, &[]).await;
    let (elastic, _) = cloud.allocate(&[]).await;
    for (params, code) in [
        (
            vec![
                ("PublicIp", elastic.as_str()),
                ("InstanceId", "i-0123456789abcdef0"),
            ],
            "InvalidInstanceID.NotFound",
        ),
        (
            vec![
                ("AllocationId", "eipalloc-0123456789abcdef0"),
                ("InstanceId", instance.as_str()),
            ],
            "InvalidAllocationID.NotFound",
        ),
        (
            vec![
                ("PublicIp", "172.24.4.6"),
                ("InstanceId", instance.as_str()),
            ],
            "InvalidAddress.NotFound",
        ),
    ] {
        cloud
            .call("AssociateAddress", &params)
            .await
            .refused(400, code);
    }
    cloud
        .call(
            "DisassociateAddress",
            &[("AssociationId", "eipassoc-0123456789abcdef0")],
        )
        .await
        .refused(400, "InvalidAssociationID.NotFound");
    cloud
        .call("DisassociateAddress", &[("PublicIp", "172.24.4.6")])
        .await
        .refused(400, "InvalidAddress.NotFound");
    cloud
        .call("ReleaseAddress", &[("PublicIp", "172.24.4.6")])
        .await
        .refused(400, "InvalidAddress.NotFound");
    // Disassociating an address associated with nothing changes nothing.
    cloud
        .call("DisassociateAddress", &[("PublicIp", &elastic)])
        .await
        .ok();
}
