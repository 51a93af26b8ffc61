//! RunInstances the way current clients launch: `SubnetId`,
//! `SecurityGroupId.N`, `NetworkInterface.1` with its fields, and
//! `PrivateIpAddress`, each carried to the scheduler, each error as EC2
//! gives it (an address another live instance holds, or outside the
//! subnet, refused at once), and another project's subnet or group never
//! reachable.

use stratus_api::ec2::ids::default_subnet_id;

use crate::endpoint::egress::create;
use crate::endpoint::network::WithNetwork;

/// An endpoint knowing zones `nova` and `zone-b`, with the stand-in network
/// host (alpha's network is 10.1.0.0/24) and an image; its id.
async fn two_zones() -> (WithNetwork, String) {
    let endpoint = WithNetwork::start().await;
    {
        let mut zones = endpoint.cloud.zones.lock().expect("zones");
        zones.names = vec!["nova".into(), "zone-b".into()];
        zones.asked = Some(std::time::Instant::now());
    }
    let ami = endpoint.register_image("tiny").await;
    (endpoint, ami)
}

/// The `n`-th `run_instance` request the scheduler got, once it has.
async fn run(endpoint: &WithNetwork, n: usize) -> serde_json::Value {
    endpoint.scheduler.runs(n + 1).await[n]["instances"][0].clone()
}

fn groups_of(request: &serde_json::Value) -> Vec<String> {
    request["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["group"].as_str().expect("group id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_subnet_places_the_instance_in_its_zone() {
    let (endpoint, ami) = two_zones().await;
    let subnet_b = default_subnet_id("alpha", "zone-b");
    endpoint
        .run_one(&ami, &[("SubnetId", &subnet_b)])
        .await
        .ok();
    let sent = run(&endpoint, 0).await;
    assert_eq!(sent["placement"]["availability_zone"], "zone-b", "{sent}");
    // The same subnet inside the interface.
    endpoint
        .run_one(
            &ami,
            &[
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SubnetId", &subnet_b),
            ],
        )
        .await
        .ok();
    assert_eq!(
        run(&endpoint, 1).await["placement"]["availability_zone"],
        "zone-b"
    );
    // A placement that agrees is fine; one that contradicts is refused.
    endpoint
        .run_one(
            &ami,
            &[
                ("SubnetId", &subnet_b),
                ("Placement.AvailabilityZone", "zone-b"),
            ],
        )
        .await
        .ok();
    endpoint
        .run_one(
            &ami,
            &[
                ("SubnetId", &subnet_b),
                ("Placement.AvailabilityZone", "nova"),
            ],
        )
        .await
        .refused(400, "InvalidParameterCombination");
}

#[tokio::test]
async fn unknown_and_other_projects_subnets_are_not_found() {
    let (endpoint, ami) = two_zones().await;
    let theirs = default_subnet_id("beta", "nova");
    let unknown_zone = default_subnet_id("alpha", "zone-z");
    for subnet in [
        "subnet-1",
        "subnet-0123456789abcdef0",
        &theirs,
        &unknown_zone,
    ] {
        endpoint
            .run_one(&ami, &[("SubnetId", subnet)])
            .await
            .refused(400, "InvalidSubnetID.NotFound");
        endpoint
            .run_one(&ami, &[("NetworkInterface.1.SubnetId", subnet)])
            .await
            .refused(400, "InvalidSubnetID.NotFound");
    }
}

#[tokio::test]
async fn groups_by_id_at_top_level_and_in_the_interface() {
    let (endpoint, ami) = two_zones().await;
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    let db = create(&endpoint, &alpha, "db").await;
    endpoint
        .run_one(
            &ami,
            &[("SecurityGroupId.1", &web), ("SecurityGroupId.2", &db)],
        )
        .await
        .ok();
    let mut wanted = vec![web.clone(), db.clone()];
    wanted.sort();
    assert_eq!(groups_of(&run(&endpoint, 0).await), wanted);
    endpoint
        .run_one(
            &ami,
            &[
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SecurityGroupId.1", &db),
            ],
        )
        .await
        .ok();
    assert_eq!(
        groups_of(&run(&endpoint, 1).await),
        std::slice::from_ref(&db)
    );
    // Names and ids together name both.
    endpoint
        .run_one(
            &ami,
            &[("SecurityGroupId.1", &db), ("SecurityGroup.1", "web")],
        )
        .await
        .ok();
    assert_eq!(groups_of(&run(&endpoint, 2).await), wanted);

    let beta = endpoint.keys("beta").await;
    let theirs = create(&endpoint, &beta, "web").await;
    endpoint
        .run_one(&ami, &[("SecurityGroupId.1", &theirs)])
        .await
        .refused(400, "InvalidGroup.NotFound");
    endpoint
        .run_one(&ami, &[("NetworkInterface.1.SecurityGroupId.1", &theirs)])
        .await
        .refused(400, "InvalidGroup.NotFound");
}

#[tokio::test]
async fn a_private_ip_address_reaches_the_scheduler_and_is_kept() {
    let (endpoint, ami) = two_zones().await;
    let subnet = default_subnet_id("alpha", "nova");
    let top = endpoint
        .run_one(&ami, &[("PrivateIpAddress", "10.1.0.23")])
        .await
        .ok()
        .texts("instanceId")
        .remove(0);
    assert_eq!(run(&endpoint, 0).await["private_ip_address"], "10.1.0.23");
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    endpoint
        .run_one(
            &ami,
            &[
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SubnetId", &subnet),
                ("NetworkInterface.1.SecurityGroupId.1", &web),
                ("NetworkInterface.1.PrivateIpAddress", "10.1.0.24"),
                ("NetworkInterface.1.DeleteOnTermination", "true"),
                ("NetworkInterface.1.Description", "primary"),
                ("NetworkInterface.1.AssociatePublicIpAddress", "false"),
            ],
        )
        .await
        .ok();
    let sent = run(&endpoint, 1).await;
    assert_eq!(sent["private_ip_address"], "10.1.0.24", "{sent}");
    assert_eq!(groups_of(&sent), [web]);
    // boto3 sends the list form as PrivateIpAddressesSet.
    endpoint
        .run_one(
            &ami,
            &[
                ("NetworkInterface.1.DeviceIndex", "0"),
                (
                    "NetworkInterface.1.PrivateIpAddressesSet.1.PrivateIpAddress",
                    "10.1.0.25",
                ),
                ("NetworkInterface.1.PrivateIpAddressesSet.1.Primary", "true"),
            ],
        )
        .await
        .ok();
    assert_eq!(run(&endpoint, 2).await["private_ip_address"], "10.1.0.25");
    // Without one, none is asked for.
    endpoint.run_one(&ami, &[]).await.ok();
    assert!(run(&endpoint, 3).await.get("private_ip_address").is_none());
    // Kept with the instance, for a launch sent again after a restart.
    let rows = endpoint
        .cloud
        .db
        .instances("alpha", Some(std::slice::from_ref(&top)))
        .await
        .expect("instances");
    let kept = endpoint
        .cloud
        .db
        .requested_ip(&rows[0].uuid)
        .await
        .expect("requested ip");
    assert_eq!(kept, Some("10.1.0.23".parse().expect("address")));
    let rebuilt = stratus_api::app::instances::request::rebuild(&endpoint.cloud.db, &rows[0])
        .await
        .expect("rebuild");
    assert_eq!(rebuilt.private_ip_address, kept);
}

#[tokio::test]
async fn launch_options_that_cannot_be_had_are_refused_as_ec2_does() {
    let (endpoint, ami) = two_zones().await;
    let subnet = default_subnet_id("alpha", "nova");
    let alpha = endpoint.alpha.clone();
    let web = create(&endpoint, &alpha, "web").await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("NetworkInterface.1.DeleteOnTermination", "false")],
            "UnsupportedOperation",
        ),
        (
            vec![(
                "NetworkInterface.1.NetworkInterfaceId",
                "eni-0123456789abcdef0",
            )],
            "UnsupportedOperation",
        ),
        (
            vec![("NetworkInterface.1.Ipv6AddressCount", "1")],
            "UnsupportedOperation",
        ),
        (
            vec![
                (
                    "NetworkInterface.1.PrivateIpAddressesSet.1.PrivateIpAddress",
                    "10.1.0.5",
                ),
                (
                    "NetworkInterface.1.PrivateIpAddressesSet.2.PrivateIpAddress",
                    "10.1.0.6",
                ),
            ],
            "UnsupportedOperation",
        ),
        (
            vec![
                ("SubnetId", &subnet),
                ("NetworkInterface.1.DeviceIndex", "0"),
            ],
            "InvalidParameterCombination",
        ),
        (
            vec![
                ("SecurityGroupId.1", &web),
                ("NetworkInterface.1.DeviceIndex", "0"),
            ],
            "InvalidParameterCombination",
        ),
        (
            vec![
                ("PrivateIpAddress", "10.1.0.5"),
                ("NetworkInterface.1.DeviceIndex", "0"),
            ],
            "InvalidParameterCombination",
        ),
        (
            vec![("PrivateIpAddress", "10.1.0.300")],
            "InvalidParameterValue",
        ),
        (
            vec![("NetworkInterface.1.PrivateIpAddress", "not-an-ip")],
            "InvalidParameterValue",
        ),
        (
            vec![("NetworkInterface.1.DeleteOnTermination", "maybe")],
            "InvalidParameterValue",
        ),
    ];
    for (extra, code) in cases {
        let answer = endpoint.run_one(&ami, &extra).await;
        assert_eq!(
            answer.code().as_deref(),
            Some(code),
            "{extra:?}: {}",
            answer.body
        );
    }
    // A fixed IP names one instance: not with MaxCount above 1.
    endpoint
        .call(
            "RunInstances",
            &[
                ("ImageId", &ami),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("PrivateIpAddress", "10.1.0.5"),
            ],
        )
        .await
        .refused(400, "InvalidParameterCombination");
    // Nothing was launched by any of these.
    let described = endpoint.call("DescribeInstances", &[]).await.ok();
    assert!(
        described.texts("instanceId").is_empty(),
        "{}",
        described.body
    );
}

#[tokio::test]
async fn a_private_ip_address_another_live_instance_holds_is_refused_at_once() {
    let (endpoint, ami) = two_zones().await;
    let first = endpoint
        .run_one(&ami, &[("PrivateIpAddress", "10.1.0.23")])
        .await
        .ok()
        .texts("instanceId")
        .remove(0);
    // Asked for by a pending instance: refused whichever way it is asked.
    for asked in [
        ("PrivateIpAddress", "10.1.0.23"),
        ("NetworkInterface.1.PrivateIpAddress", "10.1.0.23"),
        (
            "NetworkInterface.1.PrivateIpAddressesSet.1.PrivateIpAddress",
            "10.1.0.23",
        ),
    ] {
        let refused = endpoint
            .run_one(&ami, &[asked])
            .await
            .refused(400, "InvalidIPAddress.InUse");
        assert!(
            refused.body.contains("Address 10.1.0.23 is in use."),
            "{}",
            refused.body
        );
    }
    // Held as the fixed IP a host gave an instance that asked for none.
    crate::vpcs::interfaces::placed(&endpoint, "10.1.0.40").await;
    endpoint
        .run_one(&ami, &[("PrivateIpAddress", "10.1.0.40")])
        .await
        .refused(400, "InvalidIPAddress.InUse");
    // Only the two launches reached the scheduler.
    let described = endpoint.call("DescribeInstances", &[]).await.ok();
    assert_eq!(described.texts("instanceId").len(), 2, "{}", described.body);
    // Another project's network is its own: the same host part is free there.
    let beta = endpoint.keys("beta").await;
    let theirs = endpoint
        .call_as(&beta, "DescribeVpcs", &[])
        .await
        .ok()
        .texts("cidrBlock")
        .remove(0);
    assert_eq!(theirs, "10.1.1.0/24");
    // Terminated, the instance lets its address go.
    endpoint
        .call("TerminateInstances", &[("InstanceId.1", &first)])
        .await
        .ok();
    endpoint
        .run_one(&ami, &[("PrivateIpAddress", "10.1.0.23")])
        .await
        .ok();
    assert_eq!(run(&endpoint, 2).await["private_ip_address"], "10.1.0.23");
}

#[tokio::test]
async fn a_private_ip_address_outside_the_subnet_or_reserved_is_refused() {
    let (endpoint, ami) = two_zones().await;
    for (address, why) in [
        ("10.9.0.5", "does not fall within"),
        ("10.1.1.5", "does not fall within"),
        ("10.1.0.0", "reserved"),
        ("10.1.0.255", "reserved"),
        ("10.1.0.1", "reserved"),
    ] {
        let refused = endpoint
            .run_one(&ami, &[("NetworkInterface.1.PrivateIpAddress", address)])
            .await
            .refused(400, "InvalidParameterValue");
        assert!(refused.body.contains(why), "{address}: {}", refused.body);
    }
    let described = endpoint.call("DescribeInstances", &[]).await.ok();
    assert!(
        described.texts("instanceId").is_empty(),
        "{}",
        described.body
    );
    // An address of the subnet is fine.
    endpoint
        .run_one(&ami, &[("PrivateIpAddress", "10.1.0.254")])
        .await
        .ok();
}
