//! Recovery across services, in one process on fake hypervisors: a launch
//! stored but never cast (the api died in between) is re-cast and runs,
//! and an address whose release was lost is reconciled away.

use std::time::Duration;

use stratus::fake_cloud::{FakeCloud, Options};
use stratus_api::app::instances::recovery::Recovery;
use stratus_api::db::images::ImageRow;
use stratus_api::db::instances::{InstanceRow, NewReservation, StateChange};
use stratus_compute::instance_dir::domain_name;
use stratus_network::reconcile::Reconciler;
use stratus_rpc::clients::ConductorClient;
use stratus_rpc::wire::conductor::{BuildClaim, ClaimAnswer, InstanceState, next_sequence};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{RequestContext, RpcClient};
use stratus_test_support::fixtures;

/// A pending launch of `image` in project p, as RunInstances stores it
/// before casting it.
fn stored_launch(image: &str) -> InstanceRow {
    let id = InstanceId::new();
    let now = stratus_api::db::now();
    InstanceRow {
        uuid: id.to_string(),
        ec2_id: id.ec2_id(),
        project_id: "p".into(),
        user_id: "u".into(),
        reservation_id: format!("r-{}", &id.ec2_id()[2..]),
        image_id: image.into(),
        instance_type: "m1.tiny".into(),
        vcpus: 1,
        memory_mb: 512,
        root_gb: 1,
        state: InstanceState::Pending,
        task_state: Some("scheduling".into()),
        state_sequence: i64::try_from(next_sequence()).expect("sequence"),
        launched_at: now.clone(),
        updated_at: now,
        ..InstanceRow::default()
    }
}

async fn store(cloud: &FakeCloud, row: &InstanceRow) {
    cloud
        .api
        .cloud
        .db
        .insert_reservation(&NewReservation {
            reservation_id: row.reservation_id.clone(),
            project_id: row.project_id.clone(),
            client_token: None,
            instances: vec![row.clone()],
            tags: vec![],
        })
        .await
        .expect("store");
}

async fn register_image(cloud: &FakeCloud) -> String {
    let disk = cloud.images.join("recover.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(1 << 20))
        .expect("image file");
    let image_id = "ami-00000000000000ace".to_owned();
    cloud
        .api
        .cloud
        .db
        .insert_image(&ImageRow::machine(
            &image_id,
            "p",
            "recover",
            &disk.display().to_string(),
        ))
        .await
        .expect("image");
    image_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_launch_stored_but_never_cast_runs_once_the_api_recovers() {
    let cloud = FakeCloud::start(Options::default()).await.expect("cloud");
    let image = register_image(&cloud).await;
    let row = stored_launch(&image);
    store(&cloud, &row).await;
    let recovery = Recovery::new(cloud.api.cloud.clone(), Duration::from_secs(20));
    let done = recovery.pass(None).await.expect("pass");
    assert_eq!(done.launches, 1);
    let db = &cloud.api.cloud.db;
    let mut state = row.state;
    for _ in 0..300 {
        state = db
            .instance_by_uuid(&row.uuid)
            .await
            .expect("db")
            .expect("row")
            .state;
        if state == InstanceState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, InstanceState::Running);
    let name = domain_name(&row.uuid.parse().expect("id"));
    let built = cloud
        .fakes
        .iter()
        .filter(|(_, fake)| fake.spec(&name).is_some())
        .count();
    assert_eq!(built, 1, "built once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_address_of_a_terminated_instance_is_released_by_the_reconcile() {
    let cloud = FakeCloud::start(Options::default()).await.expect("cloud");
    let image = register_image(&cloud).await;
    let (gone, live) = (stored_launch(&image), stored_launch(&image));
    for row in [&gone, &live] {
        let mut row = row.clone();
        row.task_state = None;
        row.state = InstanceState::Running;
        store(&cloud, &row).await;
    }
    let change = StateChange::to(
        InstanceState::Terminated,
        i64::try_from(next_sequence()).expect("sequence"),
    );
    let db = &cloud.api.cloud.db;
    assert!(db.update_state(&gone.uuid, &change).await.expect("update"));
    let unknown = InstanceId::new();
    let ids = [
        gone.uuid.parse().expect("id"),
        live.uuid.parse().expect("id"),
        unknown,
    ];
    for (n, id) in ids.into_iter().enumerate() {
        let mac = format!("02:16:3e:00:00:{n:02x}");
        cloud
            .network
            .allocate_fixed_ip(&fixtures::allocate_fixed_ip(id, "p", &mac))
            .await
            .expect("allocate");
    }
    let transport = cloud.transports[0].clone();
    let conductor = ConductorClient::new(RpcClient::new(transport, Duration::from_secs(5)));
    // Over the bus, as a host asks: the gone instance's build is refused
    // and its address may go; the live one's host resumes it.
    let ask = |id: &str, host: &str| BuildClaim {
        instance_id: id.parse().expect("id"),
        host: host.parse().expect("host"),
        attempt: 1,
        sequence: next_sequence(),
    };
    let ctx = RequestContext::system();
    let answer = conductor
        .claim_build(&ctx, ask(&gone.uuid, "node-000"))
        .await;
    assert!(
        matches!(
            answer,
            Ok(ClaimAnswer::Refused {
                release_address: true,
                ..
            })
        ),
        "{answer:?}"
    );
    let answer = conductor
        .claim_build(&ctx, ask(&live.uuid, "node-000"))
        .await;
    assert!(
        matches!(
            answer,
            Ok(ClaimAnswer::Refused {
                release_address: false,
                ..
            })
        ),
        "running with no host: {answer:?}"
    );
    let reconciler = Reconciler::new(cloud.network.clone(), conductor);
    let done = reconciler.pass().await.expect("pass");
    assert_eq!((done.held, done.released, done.unanswered), (3, 1, 0));
    let store = cloud.network.ipam().store();
    for (id, held) in [(ids[0], false), (ids[1], true), (ids[2], true)] {
        let allocation = store.allocation(&id.to_string()).await.expect("db");
        assert_eq!(allocation.is_some(), held, "{id}");
    }
}
