//! The attributes a running instance's host must apply: the
//! source/destination check and the security groups, each told to a
//! stand-in host, undone when the host cannot be told, and every peer
//! rule naming a changed group refreshed.

use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use stratus_rpc::handler::null;
use stratus_rpc::wire::compute::{InstanceGroups, SourceDestCheck};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::{HandlerError, Transport};
use stratus_test_support::stand_in::{self, StandIn};

use super::{described, launch, modify, set_state};
use crate::endpoint::Endpoint;

/// Stands in for compute host node1: keeps each `set_instance_groups` and
/// `set_source_dest_check`.
#[derive(Default)]
struct Node {
    regrouped: Mutex<Vec<InstanceGroups>>,
    checks: Mutex<Vec<SourceDestCheck>>,
}

impl StandIn for Node {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        if method == "set_instance_groups" {
            let request = serde_json::from_str(args.get()).expect("the api sends groups");
            self.regrouped.lock().expect("lock").push(request);
        }
        if method == "set_source_dest_check" {
            let request = serde_json::from_str(args.get()).expect("the api sends the check");
            self.checks.lock().expect("lock").push(request);
        }
        Ok(null())
    }
}

/// Serves `node` as compute host node1 until the guard drops.
async fn serve_node1(e: &Endpoint, node: &Arc<Node>) -> stratus_rpc::transport::ServerHandle {
    e.bus
        .serve(
            "compute",
            Some(&"node1".parse().expect("host")),
            stand_in::handler(node),
        )
        .await
        .expect("serve node1")
}

#[tokio::test]
async fn source_dest_check_goes_off_and_on_at_the_host_and_is_shown() {
    let e = Endpoint::start().await;
    let node = Arc::new(Node::default());
    let _serving = serve_node1(&e, &node).await;
    let id = launch(&e, &[]).await;
    // Pending: its build carries the check it launched with.
    modify(&e, &id, &[("SourceDestCheck.Value", "false")])
        .await
        .refused(400, "IncorrectInstanceState");
    // Its own value again is no change, in any state.
    modify(&e, &id, &[("SourceDestCheck.Value", "true")])
        .await
        .ok();
    assert!(node.checks.lock().expect("lock").is_empty());

    set_state(&e, &id, InstanceState::Running).await;
    modify(&e, &id, &[("SourceDestCheck.Value", "false")])
        .await
        .ok();
    assert_eq!(described(&e, &id, "sourceDestCheck").await, ["false"]);
    // The instance and its network interface both say so.
    let shown = e
        .call("DescribeInstances", &[("InstanceId.1", &id)])
        .await
        .ok();
    assert_eq!(shown.texts("sourceDestCheck"), ["false", "false"]);
    let row = e
        .cloud
        .db
        .instance_by_ec2_id(&id)
        .await
        .expect("db")
        .expect("row");
    let off = SourceDestCheck {
        instance_id: row.uuid.parse().expect("uuid"),
        checked: false,
    };
    assert_eq!(*node.checks.lock().expect("lock"), [off]);
    // A launch re-cast from the tables keeps it.
    let request = stratus_api::app::instances::request::rebuild(&e.cloud.db, &row)
        .await
        .expect("rebuilt");
    assert!(!request.source_dest_check);

    // Stopped, through the old form, back on.
    set_state(&e, &id, InstanceState::Stopped).await;
    modify(
        &e,
        &id,
        &[("Attribute", "sourceDestCheck"), ("Value", "true")],
    )
    .await
    .ok();
    assert_eq!(described(&e, &id, "sourceDestCheck").await, ["true"]);
    let on = SourceDestCheck {
        checked: true,
        ..off
    };
    assert_eq!(*node.checks.lock().expect("lock"), [off, on]);
    modify(&e, &id, &[("SourceDestCheck.Value", "maybe")])
        .await
        .refused(400, "InvalidParameterValue");
}

#[tokio::test]
async fn source_dest_check_stays_on_when_the_host_cannot_be_told() {
    let e = Endpoint::start().await;
    let id = launch(&e, &[]).await;
    // Running on node1, which nobody serves.
    set_state(&e, &id, InstanceState::Running).await;
    modify(&e, &id, &[("SourceDestCheck.Value", "false")])
        .await
        .refused(503, "Unavailable");
    assert_eq!(described(&e, &id, "sourceDestCheck").await, ["true"]);
}

/// Creates alpha's group `name` allowing tcp/22 from its own members; its id.
async fn group(e: &Endpoint, name: &str) -> String {
    let id = e
        .call(
            "CreateSecurityGroup",
            &[("GroupName", name), ("GroupDescription", name)],
        )
        .await
        .ok()
        .texts("groupId")
        .remove(0);
    e.call(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &id),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.Groups.1.GroupId", &id),
        ],
    )
    .await
    .ok();
    id
}

#[tokio::test]
async fn groups_are_replaced_on_the_host_and_in_every_peer_rule() {
    let e = Endpoint::start().await;
    let node = Arc::new(Node::default());
    let _serving = serve_node1(&e, &node).await;
    let id = launch(&e, &[]).await;
    let own = e.default_group().await;
    let web = group(&e, "web").await;
    let db = group(&e, "db").await;

    // Pending: its build carries the groups it launched with.
    modify(&e, &id, &[("GroupId.1", &web)])
        .await
        .refused(400, "IncorrectInstanceState");
    set_state(&e, &id, InstanceState::Running).await;
    let row = e
        .cloud
        .db
        .instance_by_ec2_id(&id)
        .await
        .expect("db")
        .expect("row");
    e.cloud
        .db
        .set_placement(&row.uuid, "10.0.0.5", "nova")
        .await
        .expect("db");

    // Another project's group is not found; nothing changes.
    let beta = e.keys("beta").await;
    let theirs = e
        .call_as(&beta, "DescribeSecurityGroups", &[])
        .await
        .ok()
        .texts("groupId")
        .remove(0);
    modify(&e, &id, &[("GroupId.1", &web), ("GroupId.2", &theirs)])
        .await
        .refused(400, "InvalidGroup.NotFound");
    assert!(node.regrouped.lock().expect("lock").is_empty());

    modify(&e, &id, &[("GroupId.1", &web), ("GroupId.2", &db)])
        .await
        .ok();
    let mut want = vec![web.clone(), db.clone()];
    want.sort();
    let shown = e
        .call(
            "DescribeInstanceAttribute",
            &[("InstanceId", &id), ("Attribute", "groupSet")],
        )
        .await
        .ok();
    assert_eq!(shown.texts("groupId"), want);
    // The host got both groups, each listing the instance as a member.
    let sent = node.regrouped.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].instance_id.to_string(), row.uuid);
    let groups: Vec<String> = sent[0]
        .security_groups
        .iter()
        .map(|g| g.group.to_string())
        .collect();
    assert_eq!(groups, want);
    let member: std::net::Ipv4Addr = "10.0.0.5".parse().expect("ip");
    assert!(
        sent[0]
            .security_groups
            .iter()
            .all(|g| g.members.contains(&member)),
        "{sent:?}"
    );
    // Every host hears the peers' new member lists.
    for g in [&web, &db] {
        e.compute
            .update_for(g, |u| u.members.contains(&member))
            .await;
    }
    // Its own set again: no call.
    modify(&e, &id, &[("GroupId.1", &db), ("GroupId.2", &web)])
        .await
        .ok();
    assert_eq!(node.regrouped.lock().expect("lock").len(), 1);
    let _ = own;
}

#[tokio::test]
async fn groups_stay_as_they_were_when_the_host_cannot_be_told() {
    let e = Endpoint::start().await;
    let id = launch(&e, &[]).await;
    let own = e.default_group().await;
    let web = group(&e, "web").await;
    // Running on node1, which nobody serves.
    set_state(&e, &id, InstanceState::Stopped).await;
    modify(&e, &id, &[("GroupId.1", &web)])
        .await
        .refused(503, "Unavailable");
    let row = e
        .cloud
        .db
        .instance_by_ec2_id(&id)
        .await
        .expect("db")
        .expect("row");
    let groups: Vec<&str> = row.groups.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(groups, [own.as_str()]);
}
