//! Tags on the default VPC, its subnets, security-group rules, network
//! interfaces and Elastic IPs: CreateTags, DescribeTags and DeleteTags take
//! them, each Describe shows them and filters by them, they go with the
//! resource, and another project's (or an unknown) id is not found with
//! EC2's code for its kind; RunInstances tags interfaces as it makes them.

use stratus_api::ec2::ids;

use crate::endpoint::network::WithNetwork;
use crate::endpoint::{Answer, Keys};

/// Alpha's resources of each new kind: (id, resource type).
struct Resources {
    vpc: String,
    subnet: String,
    rule: String,
    eni: String,
    allocation: String,
    instance: String,
}

impl Resources {
    fn all(&self) -> [(&str, &str); 5] {
        [
            (&self.vpc, "vpc"),
            (&self.subnet, "subnet"),
            (&self.rule, "security-group-rule"),
            (&self.eni, "network-interface"),
            (&self.allocation, "elastic-ip"),
        ]
    }
}

/// One of each kind, as alpha's.
async fn resources(cloud: &WithNetwork) -> Resources {
    let rules = cloud.call("DescribeSecurityGroupRules", &[]).await.ok();
    let ami = cloud.image().await;
    let instance = cloud.launch(&ami, &[]).await;
    let described = cloud
        .call("DescribeInstances", &[("InstanceId.1", &instance)])
        .await
        .ok();
    Resources {
        vpc: ids::default_vpc_id("alpha"),
        subnet: ids::default_subnet_id("alpha", "nova"),
        rule: rules.texts("securityGroupRuleId").remove(0),
        eni: described.texts("networkInterfaceId").remove(0),
        allocation: cloud.allocate(&[]).await.1,
        instance,
    }
}

/// CreateTags (or DeleteTags) of `tags` on `ids` as `keys`.
async fn tag(
    cloud: &WithNetwork,
    keys: &Keys,
    action: &str,
    ids: &[&str],
    tags: &[(&str, &str)],
) -> Answer {
    let names: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (format!("ResourceId.{}", n + 1), (*id).to_owned()))
        .chain(tags.iter().enumerate().flat_map(|(n, (k, v))| {
            [
                (format!("Tag.{}.Key", n + 1), (*k).to_owned()),
                (format!("Tag.{}.Value", n + 1), (*v).to_owned()),
            ]
        }))
        .collect();
    let params: Vec<(&str, &str)> = names
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cloud.call_as(keys, action, &params).await
}

/// The Describe that lists `kind`, and the element naming each item.
fn describe_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "vpc" => ("DescribeVpcs", "vpcId"),
        "subnet" => ("DescribeSubnets", "subnetId"),
        "security-group-rule" => ("DescribeSecurityGroupRules", "securityGroupRuleId"),
        "network-interface" => ("DescribeNetworkInterfaces", "networkInterfaceId"),
        _ => ("DescribeAddresses", "allocationId"),
    }
}

/// The ids `kind`'s Describe lists with one filter.
async fn filtered(cloud: &WithNetwork, kind: &str, name: &str, value: &str) -> Vec<String> {
    let (action, id) = describe_of(kind);
    cloud
        .call(
            action,
            &[("Filter.1.Name", name), ("Filter.1.Value.1", value)],
        )
        .await
        .ok()
        .texts(id)
}

#[tokio::test]
async fn vpcs_subnets_rules_interfaces_and_addresses_take_tags() {
    let cloud = WithNetwork::public().await;
    let alpha = cloud.alpha.clone();
    let r = resources(&cloud).await;
    let every: Vec<&str> = r.all().iter().map(|(id, _)| *id).collect();
    tag(&cloud, &alpha, "CreateTags", &every, &[("team", "blue")])
        .await
        .ok();

    let listed = cloud.call("DescribeTags", &[]).await.ok();
    for (id, kind) in r.all() {
        let at = listed
            .texts("resourceId")
            .iter()
            .position(|listed| listed == id)
            .unwrap_or_else(|| panic!("{id} untagged: {}", listed.body));
        assert_eq!(listed.texts("resourceType")[at], kind, "{}", listed.body);
        let by_type = cloud
            .call(
                "DescribeTags",
                &[
                    ("Filter.1.Name", "resource-type"),
                    ("Filter.1.Value.1", kind),
                ],
            )
            .await
            .ok();
        assert_eq!(by_type.texts("resourceId"), [id], "{kind}");

        // Each Describe shows the tag and filters by it.
        let (action, element) = describe_of(kind);
        let all = cloud.call(action, &[]).await.ok();
        assert!(
            all.body
                .contains("<tagSet><item><key>team</key><value>blue</value></item></tagSet>"),
            "{action}: {}",
            all.body
        );
        assert!(all.texts(element).contains(&id.to_owned()), "{}", all.body);
        assert_eq!(filtered(&cloud, kind, "tag:team", "blue").await, [id]);
        assert_eq!(filtered(&cloud, kind, "tag:team", "bl*").await, [id]);
        assert_eq!(filtered(&cloud, kind, "tag-key", "team").await, [id]);
        assert!(filtered(&cloud, kind, "tag:team", "red").await.is_empty());
        assert!(filtered(&cloud, kind, "tag-key", "owner").await.is_empty());
    }

    // DeleteTags by key, and by key and value.
    tag(&cloud, &alpha, "DeleteTags", &[&r.vpc], &[("team", "red")])
        .await
        .ok();
    assert_eq!(
        filtered(&cloud, "vpc", "tag-key", "team").await,
        [r.vpc.as_str()]
    );
    tag(&cloud, &alpha, "DeleteTags", &[&r.vpc, &r.subnet], &[])
        .await
        .ok();
    assert!(filtered(&cloud, "vpc", "tag-key", "team").await.is_empty());
    assert!(
        filtered(&cloud, "subnet", "tag-key", "team")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn tags_go_with_their_resource() {
    let cloud = WithNetwork::public().await;
    let alpha = cloud.alpha.clone();
    let r = resources(&cloud).await;
    let group = cloud.call("DescribeSecurityGroups", &[]).await.ok();
    let group_id = group.texts("groupId").remove(0);
    let every: Vec<&str> = r.all().iter().map(|(id, _)| *id).collect();
    tag(&cloud, &alpha, "CreateTags", &every, &[("team", "blue")])
        .await
        .ok();
    let tagged = |a: &Answer| a.texts("resourceId");

    // A revoked rule, a released address, a terminated instance's
    // interface: their tags are gone, the others stay.
    cloud
        .call(
            "RevokeSecurityGroupEgress",
            &[("GroupId", &group_id), ("SecurityGroupRuleId.1", &r.rule)],
        )
        .await
        .ok();
    cloud
        .call("ReleaseAddress", &[("AllocationId", &r.allocation)])
        .await
        .ok();
    cloud
        .call("TerminateInstances", &[("InstanceId.1", &r.instance)])
        .await
        .ok();
    let left = cloud.call("DescribeTags", &[]).await.ok();
    let mut want = vec![r.vpc.clone(), r.subnet.clone()];
    want.sort();
    assert_eq!(tagged(&left), want, "{}", left.body);
    // And they cannot be tagged again.
    for (id, code) in [
        (&r.rule, "InvalidSecurityGroupRuleId.NotFound"),
        (&r.allocation, "InvalidAllocationID.NotFound"),
        (&r.eni, "InvalidNetworkInterfaceID.NotFound"),
    ] {
        tag(&cloud, &alpha, "CreateTags", &[id], &[("team", "red")])
            .await
            .refused(400, code);
    }

    // A deleted group's rules' tags go with it.
    let web = crate::endpoint::egress::create(&cloud, &alpha, "web").await;
    let rules = cloud
        .call(
            "DescribeSecurityGroupRules",
            &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", &web)],
        )
        .await
        .ok();
    let web_rule = rules.texts("securityGroupRuleId").remove(0);
    tag(
        &cloud,
        &alpha,
        "CreateTags",
        &[&web_rule],
        &[("team", "web")],
    )
    .await
    .ok();
    cloud
        .call("DeleteSecurityGroup", &[("GroupId", &web)])
        .await
        .ok();
    let left = cloud.call("DescribeTags", &[]).await.ok();
    assert_eq!(tagged(&left), want, "{}", left.body);
}

#[tokio::test]
async fn another_projects_and_unknown_ids_are_not_found_by_kind() {
    let cloud = WithNetwork::public().await;
    let r = resources(&cloud).await;
    let beta = cloud.keys("beta").await;
    for (id, kind) in r.all() {
        let code = match kind {
            "vpc" => "InvalidVpcID.NotFound",
            "subnet" => "InvalidSubnetID.NotFound",
            "security-group-rule" => "InvalidSecurityGroupRuleId.NotFound",
            "network-interface" => "InvalidNetworkInterfaceID.NotFound",
            _ => "InvalidAllocationID.NotFound",
        };
        for action in ["CreateTags", "DeleteTags"] {
            let refused = tag(&cloud, &beta, action, &[id], &[("team", "red")])
                .await
                .refused(400, code);
            assert!(refused.body.contains(id), "{}", refused.body);
        }
    }
    let elsewhere = ids::default_subnet_id("alpha", "zone-z");
    let unknown = [
        ("vpc-00000000000000001", "InvalidVpcID.NotFound"),
        ("subnet-00000000000000001", "InvalidSubnetID.NotFound"),
        (
            "sgr-00000000000000001",
            "InvalidSecurityGroupRuleId.NotFound",
        ),
        (
            "eni-00000000000000001",
            "InvalidNetworkInterfaceID.NotFound",
        ),
        ("eipalloc-00000000000000001", "InvalidAllocationID.NotFound"),
        // A subnet of alpha's in a zone the cloud does not have.
        (elsewhere.as_str(), "InvalidSubnetID.NotFound"),
    ];
    let alpha = cloud.alpha.clone();
    for (id, code) in unknown {
        tag(&cloud, &alpha, "CreateTags", &[id], &[("team", "red")])
            .await
            .refused(400, code);
    }
    // Nothing was tagged, for either project.
    for keys in [&alpha, &beta] {
        let listed = cloud.call_as(keys, "DescribeTags", &[]).await.ok();
        assert!(listed.texts("resourceId").is_empty(), "{}", listed.body);
    }
    // Beta's own VPC takes tags; alpha's describes never show them.
    let theirs = ids::default_vpc_id("beta");
    tag(&cloud, &beta, "CreateTags", &[&theirs], &[("team", "beta")])
        .await
        .ok();
    assert!(filtered(&cloud, "vpc", "tag:team", "beta").await.is_empty());
    let listed = cloud.call("DescribeTags", &[]).await.ok();
    assert!(listed.texts("resourceId").is_empty(), "{}", listed.body);
}

#[tokio::test]
async fn run_instances_tags_the_interfaces_it_makes() {
    let cloud = WithNetwork::public().await;
    let ami = cloud.image().await;
    let instance = cloud
        .launch(
            &ami,
            &[
                ("TagSpecification.1.ResourceType", "network-interface"),
                ("TagSpecification.1.Tag.1.Key", "role"),
                ("TagSpecification.1.Tag.1.Value", "web"),
                ("TagSpecification.2.ResourceType", "instance"),
                ("TagSpecification.2.Tag.1.Key", "Name"),
                ("TagSpecification.2.Tag.1.Value", "web-1"),
            ],
        )
        .await;
    let described = cloud
        .call("DescribeInstances", &[("InstanceId.1", &instance)])
        .await
        .ok();
    let eni = described.texts("networkInterfaceId").remove(0);
    assert_eq!(
        filtered(&cloud, "network-interface", "tag:role", "web").await,
        [eni.as_str()]
    );
    let listed = cloud.call("DescribeTags", &[]).await.ok();
    let mut want = vec![eni.clone(), instance.clone()];
    want.sort();
    assert_eq!(listed.texts("resourceId"), want, "{}", listed.body);
    assert!(
        filtered(&cloud, "network-interface", "tag-key", "Name")
            .await
            .is_empty()
    );
}
