//! ModifyInstanceAttribute and DescribeInstanceAttribute over the endpoint:
//! every attribute stored and shown, each refusal with EC2's code, the
//! launch-time attributes, termination protection refusing the whole call,
//! and another project's instance not found.

use stratus_api::db::instances::StateChange;
use stratus_rpc::wire::conductor::InstanceState;

use crate::endpoint::{Answer, Endpoint};

mod host;

/// Launches one m1.tiny with `extra` parameters; its `i-…` id.
async fn launch(e: &Endpoint, extra: &[(&str, &str)]) -> String {
    let ami = e.register_image("attr").await;
    e.run_one(&ami, extra)
        .await
        .ok()
        .texts("instanceId")
        .remove(0)
}

/// Records `id` as `state` on host node1, as a host's report would.
async fn set_state(e: &Endpoint, id: &str, state: InstanceState) {
    let row = e
        .cloud
        .db
        .instance_by_ec2_id(id)
        .await
        .expect("db")
        .expect("row");
    let change = StateChange {
        host: Some("node1"),
        ..StateChange::to(state, row.state_sequence + 1_000_000_000)
    };
    assert!(
        e.cloud
            .db
            .update_state(&row.uuid, &change)
            .await
            .expect("db")
    );
}

/// The `value` texts of DescribeInstanceAttribute `attribute` of `id`.
async fn described(e: &Endpoint, id: &str, attribute: &str) -> Vec<String> {
    e.call(
        "DescribeInstanceAttribute",
        &[("InstanceId", id), ("Attribute", attribute)],
    )
    .await
    .ok()
    .texts("value")
}

async fn modify(e: &Endpoint, id: &str, params: &[(&str, &str)]) -> Answer {
    let mut all = vec![("InstanceId", id)];
    all.extend_from_slice(params);
    e.call("ModifyInstanceAttribute", &all).await
}

#[tokio::test]
async fn describe_shows_every_attribute_from_what_is_stored() {
    let e = Endpoint::start().await;
    let id = launch(&e, &[("UserData", "aGVsbG8=")]).await;
    for (attribute, want) in [
        ("instanceType", vec!["m1.tiny"]),
        ("userData", vec!["aGVsbG8="]),
        ("disableApiTermination", vec!["false"]),
        ("instanceInitiatedShutdownBehavior", vec!["stop"]),
        ("sourceDestCheck", vec!["true"]),
        ("rootDeviceName", vec!["/dev/vda"]),
        ("ebsOptimized", vec!["false"]),
        ("enaSupport", vec!["false"]),
        ("disableApiStop", vec!["false"]),
        ("sriovNetSupport", vec![]),
        ("blockDeviceMapping", vec![]),
        ("productCodes", vec![]),
        ("kernel", vec![]),
        ("ramdisk", vec![]),
    ] {
        assert_eq!(described(&e, &id, attribute).await, want, "{attribute}");
    }
    let groups = e
        .call(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "groupSet")],
        )
        .await
        .ok();
    assert_eq!(groups.texts("groupId"), vec![e.default_group().await]);
    e.call(
        "DescribeInstanceAttribute",
        &[("InstanceId", &id), ("Attribute", "colour")],
    )
    .await
    .refused(400, "InvalidParameterValue");
}

#[tokio::test]
async fn run_instances_sets_protection_and_shutdown_behaviour() {
    let e = Endpoint::start().await;
    let id = launch(
        &e,
        &[
            ("DisableApiTermination", "true"),
            ("InstanceInitiatedShutdownBehavior", "terminate"),
        ],
    )
    .await;
    assert_eq!(described(&e, &id, "disableApiTermination").await, ["true"]);
    assert_eq!(
        described(&e, &id, "instanceInitiatedShutdownBehavior").await,
        ["terminate"]
    );
    let ami = e.register_image("bad").await;
    e.run_one(&ami, &[("InstanceInitiatedShutdownBehavior", "hibernate")])
        .await
        .refused(400, "InvalidParameterValue");
}

#[tokio::test]
async fn protection_refuses_the_whole_terminate_until_turned_off() {
    let e = Endpoint::start().await;
    let free = launch(&e, &[]).await;
    let kept = launch(&e, &[]).await;
    modify(&e, &kept, &[("DisableApiTermination.Value", "true")])
        .await
        .ok();
    let refused = e
        .call(
            "TerminateInstances",
            &[("InstanceId.1", &free), ("InstanceId.2", &kept)],
        )
        .await
        .refused(400, "OperationNotPermitted");
    assert!(refused.body.contains(&kept), "{}", refused.body);
    // Nothing was terminated, not even the unprotected one.
    for id in [&free, &kept] {
        let row = e.cloud.db.instance_by_ec2_id(id).await.expect("db");
        assert_eq!(row.expect("row").state, InstanceState::Pending);
    }
    // The old form: Attribute and Value.
    modify(
        &e,
        &kept,
        &[("Attribute", "disableApiTermination"), ("Value", "false")],
    )
    .await
    .ok();
    assert_eq!(
        described(&e, &kept, "disableApiTermination").await,
        ["false"]
    );
    e.call(
        "TerminateInstances",
        &[("InstanceId.1", &free), ("InstanceId.2", &kept)],
    )
    .await
    .ok();
}

#[tokio::test]
async fn type_and_user_data_change_only_while_stopped_and_within_quota() {
    let e = Endpoint::start_with(|c| c.quotas.vcpus = 4, None).await;
    let id = launch(&e, &[]).await;
    set_state(&e, &id, InstanceState::Running).await;
    for params in [
        &[("InstanceType.Value", "m1.small")][..],
        &[("UserData.Value", "aGk=")][..],
        &[("Attribute", "instanceType"), ("Value", "m1.small")][..],
    ] {
        modify(&e, &id, params)
            .await
            .refused(400, "IncorrectInstanceState");
    }
    assert_eq!(described(&e, &id, "instanceType").await, ["m1.tiny"]);

    set_state(&e, &id, InstanceState::Stopped).await;
    modify(&e, &id, &[("InstanceType.Value", "m1.huge")])
        .await
        .refused(400, "InvalidInstanceAttributeValue");
    // 8 vCPUs do not fit a limit of 4; 4 do, in place of the old one.
    modify(&e, &id, &[("InstanceType.Value", "m1.xlarge")])
        .await
        .refused(400, "VcpuLimitExceeded");
    modify(&e, &id, &[("InstanceType.Value", "m1.large")])
        .await
        .ok();
    let row = e.cloud.db.instance_by_ec2_id(&id).await.expect("db");
    let row = row.expect("row");
    assert_eq!(
        (row.instance_type.as_str(), row.vcpus, row.memory_mb),
        ("m1.large", 4, 8192)
    );
    assert_eq!(described(&e, &id, "instanceType").await, ["m1.large"]);

    modify(&e, &id, &[("UserData.Value", "not base64!")])
        .await
        .refused(400, "InvalidParameterValue");
    modify(&e, &id, &[("UserData.Value", "aGk=")]).await.ok();
    assert_eq!(described(&e, &id, "userData").await, ["aGk="]);
}

#[tokio::test]
async fn values_are_checked_and_one_attribute_at_a_time() {
    let e = Endpoint::start().await;
    let id = launch(&e, &[]).await;
    modify(
        &e,
        &id,
        &[("InstanceInitiatedShutdownBehavior.Value", "terminate")],
    )
    .await
    .ok();
    assert_eq!(
        described(&e, &id, "instanceInitiatedShutdownBehavior").await,
        ["terminate"]
    );
    for (params, code) in [
        (
            &[("InstanceInitiatedShutdownBehavior.Value", "explode")][..],
            "InvalidParameterValue",
        ),
        (
            &[("DisableApiTermination.Value", "maybe")][..],
            "InvalidParameterValue",
        ),
        (
            &[("Attribute", "colour"), ("Value", "red")][..],
            "InvalidParameterValue",
        ),
        (
            &[("Attribute", "kernel"), ("Value", "aki-00000000000000001")][..],
            "UnsupportedOperation",
        ),
        (
            &[
                ("DisableApiTermination.Value", "true"),
                ("SourceDestCheck.Value", "true"),
            ][..],
            "InvalidParameterCombination",
        ),
        (&[][..], "MissingParameter"),
    ] {
        modify(&e, &id, params).await.refused(400, code);
    }
    assert_eq!(described(&e, &id, "disableApiTermination").await, ["false"]);
}

#[tokio::test]
async fn another_projects_instance_is_not_found_and_not_changed() {
    let e = Endpoint::start().await;
    let id = launch(&e, &[]).await;
    let beta = e.keys("beta").await;
    e.call_as(
        &beta,
        "ModifyInstanceAttribute",
        &[("InstanceId", &id), ("DisableApiTermination.Value", "true")],
    )
    .await
    .refused(400, "InvalidInstanceID.NotFound");
    e.call_as(
        &beta,
        "DescribeInstanceAttribute",
        &[("InstanceId", &id), ("Attribute", "userData")],
    )
    .await
    .refused(400, "InvalidInstanceID.NotFound");
    set_state(&e, &id, InstanceState::Running).await;
    e.call_as(
        &beta,
        "ModifyInstanceAttribute",
        &[("InstanceId", &id), ("SourceDestCheck.Value", "false")],
    )
    .await
    .refused(400, "InvalidInstanceID.NotFound");
    assert_eq!(described(&e, &id, "sourceDestCheck").await, ["true"]);
    modify(&e, "i-nothex", &[("DisableApiTermination.Value", "true")])
        .await
        .refused(400, "InvalidInstanceID.Malformed");
    assert_eq!(described(&e, &id, "disableApiTermination").await, ["false"]);
}

#[tokio::test]
async fn terminated_instances_take_no_changes() {
    let e = Endpoint::start().await;
    let id = launch(&e, &[]).await;
    set_state(&e, &id, InstanceState::Terminated).await;
    modify(&e, &id, &[("DisableApiTermination.Value", "true")])
        .await
        .refused(400, "IncorrectInstanceState");
}
