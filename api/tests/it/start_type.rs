//! A type and user data changed while an instance was stopped go to its
//! host with the start (StartInstances), and a host with no room for it answers
//! `InsufficientInstanceCapacity`: the instance stays stopped, and says why.

use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use stratus_api::db::instances::StateChange;
use stratus_rpc::handler::null;
use stratus_rpc::wire::compute::StartInstance;
use stratus_rpc::wire::conductor::{InstanceState, next_sequence};
use stratus_rpc::{HandlerError, RemoteError, ServerHandle, Transport};
use stratus_test_support::stand_in::{self, StandIn};

use crate::endpoint::Endpoint;
use crate::endpoint::egress::sections;

/// Stands in for compute host node1: keeps each start, and refuses them
/// for want of room when `full`.
#[derive(Default)]
struct Node {
    starts: Mutex<Vec<StartInstance>>,
    full: bool,
}

impl StandIn for Node {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        if method == "start_instance" {
            let request = serde_json::from_str(args.get()).expect("the api sends a start");
            self.starts.lock().expect("lock").push(request);
            if self.full {
                return Err(HandlerError::Permanent(RemoteError::new(
                    "InsufficientInstanceCapacity",
                    "not enough room: 2048 MiB of RAM wanted, 1024 of 2048 in use",
                )));
            }
        }
        Ok(null())
    }
}

/// An m1.tiny of alpha's, stopped on node1 (served by `node`), its type
/// changed to m1.small and its user data to `hi`; its `i-…` id.
async fn stopped_small(e: &Endpoint, node: &Arc<Node>) -> (String, ServerHandle) {
    let serving = e
        .bus
        .serve(
            "compute",
            Some(&"node1".parse().expect("host")),
            stand_in::handler(node),
        )
        .await
        .expect("serve node1");
    let ami = e.register_image("start-type").await;
    let id = e
        .run_one(&ami, &[])
        .await
        .ok()
        .texts("instanceId")
        .remove(0);
    let row = e.cloud.db.instance_by_ec2_id(&id).await.expect("db");
    let row = row.expect("row");
    let change = StateChange {
        host: Some("node1"),
        // A host's report, sent now: what the api records next comes after.
        ..StateChange::to(InstanceState::Stopped, sequence())
    };
    assert!(
        e.cloud
            .db
            .update_state(&row.uuid, &change)
            .await
            .expect("db")
    );
    for (name, value) in [
        ("InstanceType.Value", "m1.small"),
        ("UserData.Value", "aGk="),
    ] {
        e.call(
            "ModifyInstanceAttribute",
            &[("InstanceId", &id), (name, value)],
        )
        .await
        .ok();
    }
    (id, serving)
}

/// The next sequence, as a host stamps its reports.
fn sequence() -> i64 {
    i64::try_from(next_sequence()).expect("a sequence")
}

/// `(state name, stateReason code)` of `id` as DescribeInstances shows it.
async fn shown(e: &Endpoint, id: &str) -> (String, Option<String>) {
    let answer = e
        .call("DescribeInstances", &[("InstanceId.1", id)])
        .await
        .ok();
    let first = |section: &str, name: &str| {
        sections(&answer.body, section)
            .first()
            .and_then(|s| sections(s, name).into_iter().next())
    };
    let state = first("instanceState", "name").expect("a state");
    let reason = first("stateReason", "code");
    (state, reason)
}

#[tokio::test]
async fn the_start_carries_the_type_the_instance_has_now() {
    let e = Endpoint::start().await;
    let node = Arc::new(Node::default());
    let (id, _serving) = stopped_small(&e, &node).await;
    e.call("StartInstances", &[("InstanceId.1", &id)])
        .await
        .ok();
    let starts = node.starts.lock().expect("lock").clone();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let flavor = starts[0].flavor.clone().expect("a type sent");
    assert_eq!(
        (flavor.name.as_str(), flavor.vcpus, flavor.memory_mb),
        ("m1.small", 1, 2048)
    );
    assert_eq!(starts[0].user_data, Some(Some("aGk=".to_owned())));
    assert_eq!(shown(&e, &id).await.0, "pending");
}

#[tokio::test]
async fn a_host_without_room_leaves_it_stopped_with_insufficient_capacity() {
    let e = Endpoint::start().await;
    let node = Arc::new(Node {
        full: true,
        ..Node::default()
    });
    let (id, _serving) = stopped_small(&e, &node).await;
    let answer = e
        .call("StartInstances", &[("InstanceId.1", &id)])
        .await
        .refused(500, "InsufficientInstanceCapacity");
    // What the host said about itself stays inside the cloud.
    assert!(!answer.body.contains("in use"), "{}", answer.body);
    assert_eq!(
        shown(&e, &id).await,
        (
            "stopped".to_owned(),
            Some("Server.InsufficientInstanceCapacity".to_owned())
        )
    );
    // Still stopped with its new type: it may be started again, or changed.
    let row = e.cloud.db.instance_by_ec2_id(&id).await.expect("db");
    assert_eq!(row.expect("row").instance_type, "m1.small");
    e.call(
        "ModifyInstanceAttribute",
        &[("InstanceId", &id), ("InstanceType.Value", "m1.tiny")],
    )
    .await
    .ok();
}
