//! Public addresses through the EC2 endpoint: the address actions per
//! project, launch addresses, and what the network host is told, with the
//! stand-in network host (`endpoint::network`) on the in-process bus.

mod clients;
mod isolation;
mod launch;
mod tables;

use std::net::Ipv4Addr;

use stratus_api::config::PublicAddressing;

use crate::endpoint::network::WithNetwork;
use crate::endpoint::{Answer, Endpoint};

/// Clouds with a public range and the stand-in network host.
impl WithNetwork {
    /// The cloud on 172.24.4.0/29 (five addresses: .2 to .6), launch
    /// addresses on, quota 5.
    pub async fn public() -> Self {
        Self::public_with("172.24.4.0/29", 5).await
    }

    /// The cloud on `range` with `quota` Elastic IPs per project.
    pub async fn public_with(range: &str, quota: u64) -> Self {
        let range = range.parse().expect("range");
        let endpoint = Endpoint::start_with(
            |c| {
                c.quotas.addresses = quota;
                c.public = Some(PublicAddressing {
                    range,
                    on_launch: true,
                    dns_domain: "compute.stratus".into(),
                });
            },
            None,
        )
        .await;
        Self::serving(endpoint).await
    }

    /// A registered image's id.
    pub async fn image(&self) -> String {
        self.register_image("tiny").await
    }

    /// Launches one instance as alpha with `extra`; its EC2 id.
    pub async fn launch(&self, ami: &str, extra: &[(&str, &str)]) -> String {
        self.run_one(ami, extra)
            .await
            .ok()
            .texts("instanceId")
            .remove(0)
    }

    /// The `ipAddress` DescribeInstances shows for `instance` (alpha's).
    pub async fn ip_of(&self, instance: &str) -> Option<String> {
        let described = self
            .call("DescribeInstances", &[("InstanceId.1", instance)])
            .await
            .ok();
        described.texts("ipAddress").into_iter().next()
    }

    /// Allocates an Elastic IP as alpha: (address, allocation id).
    pub async fn allocate(&self, extra: &[(&str, &str)]) -> (String, String) {
        let a = self.call("AllocateAddress", extra).await.ok();
        (
            a.texts("publicIp").remove(0),
            a.texts("allocationId").remove(0),
        )
    }
}

/// The address `n` of 172.24.4.0/24.
pub fn pub_ip(n: u8) -> String {
    Ipv4Addr::new(172, 24, 4, n).to_string()
}

/// The `publicIp`s an answer lists.
pub fn listed(a: &Answer) -> Vec<String> {
    a.texts("publicIp")
}

#[tokio::test]
async fn allocate_describe_and_release_an_elastic_ip() {
    let cloud = WithNetwork::public().await;
    let a = cloud
        .call("AllocateAddress", &[("Domain", "vpc")])
        .await
        .ok();
    let address = a.texts("publicIp").remove(0);
    let allocation = a.texts("allocationId").remove(0);
    // The lowest address after the gateway (.1).
    assert_eq!(address, pub_ip(2));
    assert!(
        stratus_api::ec2::ids::is_id("eipalloc", &allocation) && allocation.len() == 26,
        "{allocation}"
    );
    assert_eq!(a.texts("domain"), ["vpc"]);

    // Without a Domain: standard, as EC2-Classic clients mean it.
    let (second, _) = cloud.allocate(&[]).await;
    assert_eq!(second, pub_ip(3));

    let all = cloud.call("DescribeAddresses", &[]).await.ok();
    assert_eq!(listed(&all), [pub_ip(2), pub_ip(3)]);
    assert_eq!(all.texts("domain"), ["vpc", "standard"]);
    assert!(all.texts("instanceId").is_empty());
    assert_eq!(all.texts("networkBorderGroup").len(), 2);

    let by_ip = cloud
        .call("DescribeAddresses", &[("PublicIp.1", &pub_ip(3))])
        .await
        .ok();
    assert_eq!(listed(&by_ip), [pub_ip(3)]);
    let by_id = cloud
        .call("DescribeAddresses", &[("AllocationId.1", &allocation)])
        .await
        .ok();
    assert_eq!(listed(&by_id), [pub_ip(2)]);
    for (name, value, want) in [
        ("domain", "standard", vec![pub_ip(3)]),
        ("public-ip", "172.24.4.2", vec![pub_ip(2)]),
        ("allocation-id", allocation.as_str(), vec![pub_ip(2)]),
        ("instance-id", "i-*", vec![]),
    ] {
        let filtered = cloud
            .call(
                "DescribeAddresses",
                &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
            )
            .await
            .ok();
        assert_eq!(listed(&filtered), want, "{name}={value}");
    }
    cloud
        .call("DescribeAddresses", &[("PublicIp.1", &pub_ip(6))])
        .await
        .refused(400, "InvalidAddress.NotFound");
    cloud
        .call(
            "DescribeAddresses",
            &[("AllocationId.1", "eipalloc-0123456789abcdef0")],
        )
        .await
        .refused(400, "InvalidAllocationID.NotFound");

    cloud
        .call("ReleaseAddress", &[("AllocationId", &allocation)])
        .await
        .ok();
    cloud
        .call("ReleaseAddress", &[("PublicIp", &second)])
        .await
        .ok();
    let none = cloud.call("DescribeAddresses", &[]).await.ok();
    assert!(listed(&none).is_empty(), "{}", none.body);
    cloud
        .call("ReleaseAddress", &[("AllocationId", &allocation)])
        .await
        .refused(400, "InvalidAllocationID.NotFound");
    cloud
        .call("ReleaseAddress", &[("PublicIp", &second)])
        .await
        .refused(400, "InvalidAddress.NotFound");
    // Released addresses go back to the pool.
    assert_eq!(cloud.allocate(&[]).await.0, pub_ip(2));
    // Nothing was associated: the network host was told nothing.
    assert!(
        cloud.network.maps().is_empty(),
        "{:?}",
        cloud.network.maps()
    );
}

#[tokio::test]
async fn a_specific_address_must_be_free_and_in_the_range() {
    let cloud = WithNetwork::public().await;
    let a = cloud
        .call("AllocateAddress", &[("Address", "172.24.4.5")])
        .await
        .ok();
    assert_eq!(listed(&a), [pub_ip(5)]);
    cloud
        .call("AllocateAddress", &[("Address", "172.24.4.5")])
        .await
        .refused(400, "InvalidIPAddress.InUse");
    for outside in ["10.0.0.1", "172.24.4.1", "172.24.4.7"] {
        cloud
            .call("AllocateAddress", &[("Address", outside)])
            .await
            .refused(400, "InvalidParameterValue");
    }
    cloud
        .call("AllocateAddress", &[("Address", "not-an-address")])
        .await
        .refused(400, "InvalidParameterValue");
    cloud
        .call("AllocateAddress", &[("Domain", "classic")])
        .await
        .refused(400, "InvalidParameterValue");
    // The next one skips the taken .5.
    let (first, _) = cloud.allocate(&[]).await;
    assert_eq!(first, pub_ip(2));
}

#[tokio::test]
async fn the_quota_counts_elastic_ips_per_project() {
    let cloud = WithNetwork::public_with("172.24.4.0/28", 2).await;
    cloud.allocate(&[]).await;
    cloud.allocate(&[]).await;
    let refused = cloud
        .call("AllocateAddress", &[])
        .await
        .refused(400, "AddressLimitExceeded");
    assert!(refused.body.contains('2'), "{}", refused.body);
    // Another project has its own quota; launch addresses count for none.
    let beta = cloud.keys("beta").await;
    cloud.call_as(&beta, "AllocateAddress", &[]).await.ok();
    let ami = cloud.image().await;
    let instance = cloud.launch(&ami, &[]).await;
    assert!(cloud.ip_of(&instance).await.is_some());
    // Releasing one makes room again.
    let address = listed(&cloud.call("DescribeAddresses", &[]).await.ok()).remove(0);
    cloud
        .call("ReleaseAddress", &[("PublicIp", &address)])
        .await
        .ok();
    cloud.call("AllocateAddress", &[]).await.ok();
}

#[tokio::test]
async fn the_pool_exhausted_refuses_allocations_with_a_clear_error() {
    let cloud = WithNetwork::public_with("172.24.4.0/30", 5).await;
    // A /30: .1 the gateway, .2 the one address.
    cloud.allocate(&[]).await;
    let refused = cloud
        .call("AllocateAddress", &[])
        .await
        .refused(400, "AddressLimitExceeded");
    assert!(refused.body.contains("public range"), "{}", refused.body);
}

#[tokio::test]
async fn a_cloud_without_a_public_range_says_so() {
    let endpoint = Endpoint::start().await;
    let refused = endpoint
        .call("AllocateAddress", &[])
        .await
        .refused(400, "UnsupportedOperation");
    assert!(refused.body.contains("public"), "{}", refused.body);
    endpoint
        .call(
            "AssociateAddress",
            &[
                ("PublicIp", "172.24.4.2"),
                ("InstanceId", "i-0123456789abcdef0"),
            ],
        )
        .await
        .refused(400, "UnsupportedOperation");
    let none = endpoint.call("DescribeAddresses", &[]).await.ok();
    assert!(listed(&none).is_empty());
    // Launches go on without one.
    let ami = endpoint.register_image("tiny").await;
    let run = endpoint.run_one(&ami, &[]).await.ok();
    assert!(run.texts("ipAddress").is_empty(), "{}", run.body);
}

#[tokio::test]
async fn malformed_and_missing_parameters_are_refused() {
    let cloud = WithNetwork::public().await;
    for (action, params, code) in [
        ("ReleaseAddress", vec![], "MissingParameter"),
        ("DisassociateAddress", vec![], "MissingParameter"),
        (
            "ReleaseAddress",
            vec![("PublicIp", "x.y")],
            "InvalidParameterValue",
        ),
        (
            "ReleaseAddress",
            vec![("AllocationId", "eipalloc-zz")],
            "InvalidAllocationID.Malformed",
        ),
        (
            "DisassociateAddress",
            vec![("AssociationId", "nope")],
            "InvalidAssociationID.Malformed",
        ),
        (
            "AssociateAddress",
            vec![("PublicIp", "172.24.4.2")],
            "MissingParameter",
        ),
        (
            "AssociateAddress",
            vec![
                ("PublicIp", "172.24.4.2"),
                ("InstanceId", "i-0123456789abcdef0"),
                ("NetworkInterfaceId", "eni-1"),
            ],
            "UnsupportedOperation",
        ),
    ] {
        cloud.call(action, &params).await.refused(400, code);
    }
    cloud
        .call("AllocateAddress", &[("DryRun", "true")])
        .await
        .refused(412, "DryRunOperation");
    assert!(listed(&cloud.call("DescribeAddresses", &[]).await.ok()).is_empty());
}
