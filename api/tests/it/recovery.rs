//! The api's recovery: launches no host took are cast again to the
//! scheduler as they were first sent, and terminates and stops no host
//! finished are cast again to their hosts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use stratus_api::app::instances::recovery::{Recovered, Recovery};
use stratus_api::db::instances::{InstanceRow, StateChange};
use stratus_rpc::handler::null;
use stratus_rpc::wire::conductor::{InstanceState, next_sequence};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{HandlerError, Transport};
use stratus_test_support::stand_in::{self, StandIn};

use crate::endpoint::Endpoint;

/// A compute host's stand-in: keeps (method, instance id) of each request.
#[derive(Default)]
struct Host {
    asked: Mutex<Vec<(String, String)>>,
}

impl StandIn for Host {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        let args: serde_json::Value = serde_json::from_str(args.get()).expect("JSON");
        let id = args["instance_id"].as_str().unwrap_or_default().to_owned();
        self.asked
            .lock()
            .expect("lock")
            .push((method.to_owned(), id));
        Ok(null())
    }
}

/// Records `state` (task `task`, host `host`, reason `reason`) for `uuid`.
async fn set(
    endpoint: &Endpoint,
    uuid: &str,
    state: InstanceState,
    task: Option<&str>,
    host: Option<&str>,
    reason: Option<&str>,
) {
    let change = StateChange {
        task_state: task,
        host,
        reason,
        ..StateChange::to(state, i64::try_from(next_sequence()).expect("sequence"))
    };
    let db = &endpoint.cloud.db;
    assert!(db.update_state(uuid, &change).await.expect("update"));
}

async fn row(endpoint: &Endpoint, uuid: &str) -> InstanceRow {
    let db = &endpoint.cloud.db;
    db.instance_by_uuid(uuid).await.expect("db").expect("row")
}

/// Launches one instance with a key and user data; its UUID and the
/// request the scheduler got.
async fn launch(endpoint: &Endpoint, ami: &str, key: &str) -> (String, serde_json::Value) {
    let before = endpoint.scheduler.runs.lock().expect("lock").len();
    endpoint
        .run_one(ami, &[("KeyName", key), ("UserData", "aGVsbG8=")])
        .await
        .ok();
    let sent = endpoint.scheduler.runs(before + 1).await[before].clone();
    let request = sent["instances"][0].clone();
    let uuid = request["instance_id"].as_str().expect("id").to_owned();
    (uuid, request)
}

/// A stand-in compute host `node-a` on the endpoint's bus.
async fn serve_host(endpoint: &Endpoint) -> (Arc<Host>, stratus_rpc::ServerHandle) {
    let host = Arc::new(Host::default());
    let serving = endpoint
        .bus
        .serve(
            "compute",
            Some(&"node-a".parse().expect("host")),
            stand_in::handler(&host),
        )
        .await
        .expect("serve");
    (host, serving)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_no_host_took_are_cast_again_as_first_sent() {
    let endpoint = Endpoint::start().await;
    let ami = endpoint.register_image("recover").await;
    endpoint
        .call("CreateKeyPair", &[("KeyName", "k"), ("KeyType", "ed25519")])
        .await
        .ok();
    let (never_placed, first) = launch(&endpoint, &ami, "k").await;
    let (handed_back, second) = launch(&endpoint, &ami, "k").await;
    set(
        &endpoint,
        &handed_back,
        InstanceState::Pending,
        Some("scheduling"),
        Some("node-a"),
        Some("no room"),
    )
    .await;
    // Neither a build under way nor a running instance is re-cast.
    let (building, _) = launch(&endpoint, &ami, "k").await;
    set(
        &endpoint,
        &building,
        InstanceState::Pending,
        Some("networking"),
        Some("node-a"),
        None,
    )
    .await;
    let (running, _) = launch(&endpoint, &ami, "k").await;
    set(
        &endpoint,
        &running,
        InstanceState::Running,
        None,
        Some("node-a"),
        None,
    )
    .await;

    let recovery = Recovery::new(endpoint.cloud.clone(), Duration::from_secs(20));
    let done = recovery.pass(None).await.expect("pass");
    assert_eq!(
        done,
        Recovered {
            launches: 2,
            ..Recovered::default()
        }
    );
    let runs = endpoint.scheduler.runs(5).await;
    let recast = runs[4]["instances"].as_array().expect("instances").clone();
    assert_eq!(recast.len(), 2, "{recast:?}");
    let of = |uuid: &str| {
        recast
            .iter()
            .find(|r| r["instance_id"] == uuid)
            .cloned()
            .expect("re-cast")
    };
    assert_eq!(of(&never_placed), first);
    // The host that handed it back counts as tried, with its reason.
    let mut expected = second;
    expected["placement"]["hosts_tried"] = serde_json::json!(["node-a"]);
    expected["placement"]["failures"] = serde_json::json!(["no room"]);
    assert_eq!(of(&handed_back), expected);

    // Cast again lately: the periodic pass leaves them alone.
    let done = recovery.pass(Some(Duration::ZERO)).await.expect("pass");
    assert_eq!(done, Recovered::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_whose_image_is_gone_ends_with_the_reason() {
    let endpoint = Endpoint::start().await;
    let ami = endpoint.register_image("gone").await;
    endpoint
        .call("CreateKeyPair", &[("KeyName", "k"), ("KeyType", "ed25519")])
        .await
        .ok();
    let (uuid, _) = launch(&endpoint, &ami, "k").await;
    endpoint
        .call("DeregisterImage", &[("ImageId", &ami)])
        .await
        .ok();
    let recovery = Recovery::new(endpoint.cloud.clone(), Duration::from_secs(20));
    let done = recovery.pass(None).await.expect("pass");
    assert_eq!(
        done,
        Recovered {
            failed: 1,
            ..Recovered::default()
        }
    );
    let ended = row(&endpoint, &uuid).await;
    assert_eq!(ended.state, InstanceState::Error);
    let reason = ended.state_reason.unwrap_or_default();
    assert!(reason.contains("no longer registered"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminates_stops_and_starts_no_host_finished_are_cast_again() {
    let endpoint = Endpoint::start().await;
    let (host, _serving) = serve_host(&endpoint).await;
    let db = &endpoint.cloud.db;
    let ids: Vec<String> = (0..5)
        .map(|_| InstanceId::new())
        .map(|id| id.to_string())
        .collect();
    for id in &ids {
        crate::conductor::instance(db, id.parse().expect("id")).await;
    }
    let [terminating, unplaced, stopping, quiet, starting] =
        [&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]];
    set(
        &endpoint,
        terminating,
        InstanceState::ShuttingDown,
        Some("deleting"),
        Some("node-a"),
        None,
    )
    .await;
    set(
        &endpoint,
        unplaced,
        InstanceState::ShuttingDown,
        Some("deleting"),
        None,
        None,
    )
    .await;
    set(
        &endpoint,
        stopping,
        InstanceState::Stopping,
        Some("powering-off"),
        Some("node-a"),
        None,
    )
    .await;
    set(
        &endpoint,
        quiet,
        InstanceState::ShuttingDown,
        Some("deleting"),
        Some("node-a"),
        None,
    )
    .await;

    set(
        &endpoint,
        starting,
        InstanceState::Pending,
        Some("powering-on"),
        Some("node-a"),
        None,
    )
    .await;
    // Periodically only what had no news for a while: none yet.
    let recovery = Recovery::new(endpoint.cloud.clone(), Duration::from_secs(20));
    let done = recovery
        .pass(Some(Duration::from_secs(20)))
        .await
        .expect("pass");
    assert_eq!(done, Recovered::default());

    let done = recovery.pass(None).await.expect("pass");
    assert_eq!(
        done,
        Recovered {
            to_hosts: 4,
            ended: 1,
            ..Recovered::default()
        }
    );
    assert_eq!(
        row(&endpoint, unplaced).await.state,
        InstanceState::Terminated
    );
    let mut asked = Vec::new();
    for _ in 0..250 {
        asked = host.asked.lock().expect("lock").clone();
        if asked.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    asked.sort();
    let mut want = vec![
        ("start_instance".to_owned(), starting.clone()),
        ("stop_instance".to_owned(), stopping.clone()),
        ("terminate_instance".to_owned(), terminating.clone()),
        ("terminate_instance".to_owned(), quiet.clone()),
    ];
    want.sort();
    assert_eq!(asked, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_launch_handed_back_ends_it_at_once() {
    let endpoint = Endpoint::start().await;
    let (host, _serving) = serve_host(&endpoint).await;
    let ami = endpoint.register_image("handed").await;
    endpoint
        .call("CreateKeyPair", &[("KeyName", "k"), ("KeyType", "ed25519")])
        .await
        .ok();
    let (uuid, _) = launch(&endpoint, &ami, "k").await;
    set(
        &endpoint,
        &uuid,
        InstanceState::Pending,
        Some("scheduling"),
        Some("node-a"),
        Some("no room"),
    )
    .await;
    let ec2_id = row(&endpoint, &uuid).await.ec2_id;
    endpoint
        .call("TerminateInstances", &[("InstanceId.1", &ec2_id)])
        .await
        .ok();
    assert_eq!(row(&endpoint, &uuid).await.state, InstanceState::Terminated);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(host.asked.lock().expect("lock").is_empty());
}
