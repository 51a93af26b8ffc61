//! Owners in EC2 responses are the project's 12-digit account id (the
//! `Account` STS answers), and requests that name an owner take it:
//! reservations, groups and their rules' peers, images, the `owner-id`
//! filters, `Owner.N`, and `UserId` in group pairs.

use stratus_api::ec2::ids::account_id;

use super::{Answer, Endpoint};

#[tokio::test]
async fn every_owner_in_a_response_is_the_projects_account_id() {
    let endpoint = Endpoint::start().await;
    let account = account_id("alpha");
    let ami = endpoint.register_image("owned").await;
    let images = endpoint.call("DescribeImages", &[]).await.ok();
    assert_eq!(images.texts("imageOwnerId"), [account.as_str()]);
    let group = endpoint.default_group().await;
    endpoint
        .call(
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", group.as_str()),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "80"),
                ("IpPermissions.1.ToPort", "80"),
                ("IpPermissions.1.UserIdGroupPairs.1.GroupId", group.as_str()),
            ],
        )
        .await
        .ok();
    let groups = endpoint.call("DescribeSecurityGroups", &[]).await.ok();
    assert_eq!(groups.texts("ownerId"), [account.as_str()]);
    assert_eq!(groups.texts("userId"), [account.as_str()]);
    // The reservation's owner, and its instance's network interface's.
    let run = endpoint.run_one(&ami, &[]).await.ok();
    assert_eq!(run.texts("ownerId"), [account.as_str(), account.as_str()]);
    let described = endpoint.call("DescribeInstances", &[]).await.ok();
    assert_eq!(
        described.texts("ownerId"),
        [account.as_str(), account.as_str()]
    );
}

/// The ids of the images alpha finds with `Owner.1=owner`.
async fn images_of(endpoint: &Endpoint, owner: &str) -> Vec<String> {
    endpoint
        .call("DescribeImages", &[("Owner.1", owner)])
        .await
        .ok()
        .texts("imageId")
}

/// `action` as alpha with the `owner-id` filter.
async fn owned_by(endpoint: &Endpoint, action: &str, owner: &str) -> Answer {
    let params = [("Filter.1.Name", "owner-id"), ("Filter.1.Value.1", owner)];
    endpoint.call(action, &params).await.ok()
}

#[tokio::test]
async fn owner_filters_and_owner_parameters_take_the_account_id() {
    let endpoint = Endpoint::start().await;
    let (alpha, beta) = (account_id("alpha"), account_id("beta"));
    let ami = endpoint.register_image("mine").await;
    endpoint.run_one(&ami, &[]).await.ok();
    assert_eq!(images_of(&endpoint, &alpha).await, [ami.as_str()]);
    assert_eq!(images_of(&endpoint, "self").await, [ami.as_str()]);
    assert!(images_of(&endpoint, &beta).await.is_empty());
    for action in [
        "DescribeImages",
        "DescribeSecurityGroups",
        "DescribeInstances",
    ] {
        let mine = owned_by(&endpoint, action, &alpha).await;
        assert!(mine.body.contains(&alpha), "{action}: {}", mine.body);
        let none = owned_by(&endpoint, action, &beta).await;
        assert!(!none.body.contains(&alpha), "{action}: {}", none.body);
        for id in ["imageId", "groupId", "instanceId"] {
            assert!(none.texts(id).is_empty(), "{action}: {}", none.body);
        }
    }
    // Project beta naming alpha's account sees none of alpha's resources.
    let beta_keys = endpoint.keys("beta").await;
    let params = [
        ("Filter.1.Name", "owner-id"),
        ("Filter.1.Value.1", alpha.as_str()),
    ];
    let theirs = endpoint
        .call_as(&beta_keys, "DescribeInstances", &params)
        .await
        .ok();
    assert!(theirs.texts("instanceId").is_empty(), "{}", theirs.body);
    let theirs = endpoint
        .call_as(&beta_keys, "DescribeImages", &[("Owner.1", alpha.as_str())])
        .await
        .ok();
    assert!(theirs.texts("imageId").is_empty(), "{}", theirs.body);
}

/// An ingress rule on `group` for `port` from itself, naming `owner` as
/// the pair's UserId.
async fn self_rule(endpoint: &Endpoint, group: &str, port: &str, owner: &str) -> Answer {
    let params = [
        ("GroupId", group),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", port),
        ("IpPermissions.1.ToPort", port),
        ("IpPermissions.1.UserIdGroupPairs.1.GroupId", group),
        ("IpPermissions.1.UserIdGroupPairs.1.UserId", owner),
    ];
    endpoint
        .call("AuthorizeSecurityGroupIngress", &params)
        .await
}

#[tokio::test]
async fn group_pairs_take_the_account_id_and_refuse_another_accounts() {
    let endpoint = Endpoint::start().await;
    let group = endpoint.default_group().await;
    // What amazon.aws sends: the account STS answered.
    self_rule(&endpoint, &group, "443", &account_id("alpha"))
        .await
        .ok();
    let beta = account_id("beta");
    let refused = self_rule(&endpoint, &group, "444", &beta)
        .await
        .refused(400, "InvalidGroup.NotFound");
    assert!(refused.body.contains(&beta), "{}", refused.body);
    // The flat form's owner too.
    let flat = [
        ("GroupName", "default"),
        ("SourceSecurityGroupName", "default"),
        ("SourceSecurityGroupOwnerId", beta.as_str()),
    ];
    endpoint
        .call("AuthorizeSecurityGroupIngress", &flat)
        .await
        .refused(400, "InvalidGroup.NotFound");
    let described = endpoint.call("DescribeSecurityGroups", &[]).await.ok();
    assert_eq!(described.texts("fromPort"), ["443"], "{}", described.body);
}
