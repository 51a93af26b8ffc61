//! The conductor over the database: reports land in the instance tables
//! (newest first), the metadata service answers from them, and a host still
//! building an instance the user terminated is told to stop.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use stratus_api::conductor::Conductor;
use stratus_api::db::Db;
use stratus_api::db::instances::{InstanceRow, NewReservation, StateChange};
use stratus_api::metadata::db_source::DbSource;
use stratus_api::service::ConductorService;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::handler::null;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::conductor::{GuestMetadata, InstanceState, InstanceUpdate};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{Handler, HandlerError, RequestContext, RpcClient, ServerHandle, Transport};
use stratus_test_support::stand_in::{self, StandIn};

use crate::metadata::{get, serve_source};

/// Records the methods compute hosts are asked to run.
#[derive(Default)]
struct Host {
    calls: Mutex<Vec<String>>,
}

impl StandIn for Host {
    fn answer(&self, method: &str, _: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        self.calls.lock().expect("lock").push(method.to_owned());
        Ok(null())
    }
}

impl Host {
    /// Waits (up to 2 s) until some method was called; casts arrive after
    /// the handler that sent them returns.
    async fn wait_for_a_call(&self) {
        for _ in 0..100 {
            if !self.calls.lock().expect("lock").is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A pending instance `id` of project p1, stored in `db`.
pub async fn instance(db: &Db, id: InstanceId) {
    let row = InstanceRow {
        uuid: id.to_string(),
        ec2_id: id.ec2_id(),
        project_id: "p1".into(),
        user_id: "u1".into(),
        reservation_id: format!("r-{}", &id.ec2_id()[2..]),
        image_id: "ami-00000000000000009".into(),
        instance_type: "m1.tiny".into(),
        vcpus: 1,
        memory_mb: 512,
        root_gb: 1,
        user_data: Some("aGVsbG8=".into()),
        state: InstanceState::Pending,
        launched_at: stratus_api::db::now(),
        updated_at: stratus_api::db::now(),
        ..InstanceRow::default()
    };
    db.insert_reservation(&NewReservation {
        reservation_id: row.reservation_id.clone(),
        project_id: "p1".into(),
        client_token: None,
        instances: vec![row],
        tags: vec![],
    })
    .await
    .expect("insert");
}

/// The api tables in a SQLite file under `dir`.
pub async fn sqlite_in(dir: &std::path::Path) -> Db {
    Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("api.sqlite").display()
    ))
    .await
    .expect("db")
}

fn update(id: InstanceId, state: InstanceState, sequence: u64) -> InstanceUpdate {
    report("node1", id, state, sequence, 1)
}

fn report(
    host: &str,
    id: InstanceId,
    state: InstanceState,
    sequence: u64,
    attempt: u32,
) -> InstanceUpdate {
    InstanceUpdate {
        instance_id: id,
        host: Some(host.parse().expect("host")),
        state,
        task_state: None,
        reason: None,
        sequence,
        attempt,
    }
}

/// Sends one `instance_update` report.
async fn report_update(
    service: &ConductorService,
    host: &str,
    id: InstanceId,
    state: InstanceState,
    sequence: u64,
    attempt: u32,
) {
    send(
        service,
        "instance_update",
        &report(host, id, state, sequence, attempt),
    )
    .await;
}

/// Sends `(host, state, sequence, attempt)` reports for `id`, in order.
async fn report_all(
    service: &ConductorService,
    id: InstanceId,
    reports: &[(&str, InstanceState, u64, u32)],
) {
    for &(host, state, sequence, attempt) in reports {
        report_update(service, host, id, state, sequence, attempt).await;
    }
}

/// The instance's row, which must be there.
async fn row_of(db: &Db, id: InstanceId) -> InstanceRow {
    db.instance_by_uuid(&id.to_string())
        .await
        .expect("db")
        .expect("row")
}

/// Serves compute host `name`'s queue on `bus` with `host`.
async fn serve_host(bus: &MemoryTransport, name: &str, host: Arc<Host>) -> ServerHandle {
    bus.serve(
        "compute",
        Some(&name.parse().expect("host")),
        stand_in::handler(&host),
    )
    .await
    .expect("serve")
}

/// The instance's state and host, as its row holds them.
async fn state_and_host(db: &Db, id: InstanceId) -> (InstanceState, Option<String>) {
    let row = row_of(db, id).await;
    (row.state, row.host)
}

async fn send<T: serde::Serialize>(service: &ConductorService, method: &str, value: &T) {
    let args = serde_json::value::to_raw_value(value).expect("encode");
    service
        .handle(&RequestContext::system(), method, &args)
        .await
        .expect(method);
}

#[tokio::test]
async fn reports_update_the_tables_newest_first_and_feed_the_metadata_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_in(dir.path()).await;
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let host = Arc::new(Host::default());
    let _serving = serve_host(&bus, "node1", host.clone()).await;
    let second = Arc::new(Host::default());
    let _serving_second = serve_host(&bus, "node2", second.clone()).await;
    let compute = ComputeClient::new(RpcClient::new(
        Arc::new(bus.clone()),
        Duration::from_secs(5),
    ));
    let service = ConductorService::new(Conductor::new(db.clone(), compute));
    let server = serve_source(Arc::new(DbSource::new(db.clone())), false).await;

    let id = InstanceId::new();
    instance(&db, id).await;
    let from = Ipv4Addr::new(127, 0, 0, 31);
    send(
        &service,
        "instance_metadata",
        &GuestMetadata {
            instance_id: id,
            fixed_ip: from,
            ami_id: "ami-00000000000000009".into(),
            reservation_id: "r-0000000000000000a".into(),
            availability_zone: "zone-a".into(),
            security_groups: vec![],
            key: None,
            user_data: Some("aGVsbG8=".into()),
        },
    )
    .await;
    assert_eq!(
        get(from, server, "/latest/user-data").await,
        (200, b"hello".to_vec())
    );
    assert_eq!(
        get(from, server, "/latest/meta-data/instance-id").await.1,
        id.ec2_id().into_bytes()
    );
    assert_eq!(
        get(
            from,
            server,
            "/latest/meta-data/placement/availability-zone"
        )
        .await
        .1,
        b"zone-a".to_vec()
    );

    // Reports handled out of order: the older one does not win.
    send(
        &service,
        "instance_update",
        &update(id, InstanceState::Running, 20),
    )
    .await;
    send(
        &service,
        "instance_update",
        &update(id, InstanceState::Pending, 10),
    )
    .await;
    assert_eq!(
        state_and_host(&db, id).await,
        (InstanceState::Running, Some("node1".to_owned()))
    );

    send(
        &service,
        "instance_update",
        &update(id, InstanceState::Terminated, 30),
    )
    .await;
    assert_eq!(
        get(from, server, "/latest/meta-data/instance-id").await.0,
        404
    );
    let row = row_of(&db, id).await;
    assert!(row.terminated_at.is_some());

    // Terminated by its user while a host was building it: the host's
    // "running" report does not revive it; the host is told to terminate.
    let late = InstanceId::new();
    instance(&db, late).await;
    db.update_state(
        &late.to_string(),
        &StateChange::to(InstanceState::Terminated, 5),
    )
    .await
    .expect("terminate");
    send(
        &service,
        "instance_update",
        &update(late, InstanceState::Running, 50),
    )
    .await;
    let row = row_of(&db, late).await;
    assert_eq!(row.state, InstanceState::Terminated);
    host.wait_for_a_call().await;
    assert_eq!(*host.calls.lock().expect("lock"), ["terminate_instance"]);

    // A duplicate delivery of run_instance builds the same placement on a
    // second host: that host is told to stop, the first keeps it.
    let twice = InstanceId::new();
    instance(&db, twice).await;
    report_all(
        &service,
        twice,
        &[
            ("node1", InstanceState::Pending, 100, 1),
            ("node2", InstanceState::Pending, 101, 1),
            ("node1", InstanceState::Running, 102, 1),
        ],
    )
    .await;
    assert_eq!(
        state_and_host(&db, twice).await,
        (InstanceState::Running, Some("node1".to_owned()))
    );
    second.wait_for_a_call().await;
    // Removed, not terminated: terminate would free the address node1's
    // guest uses too.
    assert_eq!(*second.calls.lock().expect("lock"), ["remove_copy"]);
    // What node2 says of its copy afterwards changes nothing.
    for (state, sequence) in [
        (InstanceState::ShuttingDown, 103),
        (InstanceState::Terminated, 104),
    ] {
        report_update(&service, "node2", twice, state, sequence, 1).await;
    }
    assert_eq!(
        state_and_host(&db, twice).await,
        (InstanceState::Running, Some("node1".to_owned()))
    );

    // A reschedule is a later placement: the new host takes over, even if
    // its report arrives before the old host's hand-back.
    let moved = InstanceId::new();
    instance(&db, moved).await;
    report_all(
        &service,
        moved,
        &[
            ("node1", InstanceState::Pending, 200, 1),
            ("node2", InstanceState::Running, 202, 2),
            ("node1", InstanceState::Pending, 201, 1),
        ],
    )
    .await;
    assert_eq!(
        state_and_host(&db, moved).await,
        (InstanceState::Running, Some("node2".to_owned()))
    );
    assert_eq!(
        second.calls.lock().expect("lock").len(),
        1,
        "the rescheduled host was not stopped"
    );
}

#[tokio::test]
async fn a_build_without_news_ends_in_error_and_a_late_report_still_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_in(dir.path()).await;
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let conductor = ConductorService::new(Conductor::new(
        db.clone(),
        ComputeClient::new(RpcClient::new(Arc::new(bus), Duration::from_secs(1))),
    ));
    let (unplaced, building, fresh) = (InstanceId::new(), InstanceId::new(), InstanceId::new());
    for id in [unplaced, building, fresh] {
        instance(&db, id).await;
    }
    send(
        &conductor,
        "instance_update",
        &InstanceUpdate {
            task_state: Some("spawning".into()),
            ..update(building, InstanceState::Pending, 10)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // `fresh` heard from its host just now; the other two have been quiet.
    send(
        &conductor,
        "instance_update",
        &update(fresh, InstanceState::Pending, 11),
    )
    .await;

    let failed = stratus_api::app::instances::build_timeout::sweep(&db, Duration::from_secs(1))
        .await
        .expect("sweep");
    assert_eq!(failed, 2);
    let state = |id: InstanceId| {
        let db = db.clone();
        async move {
            db.instance_by_uuid(&id.to_string())
                .await
                .expect("read")
                .expect("instance")
        }
    };
    let row = state(unplaced).await;
    assert_eq!(row.state, InstanceState::Error);
    assert_eq!(
        row.state_reason.as_deref(),
        Some("the build did not start within 1 s: no compute host took it")
    );
    let row = state(building).await;
    assert_eq!(row.state, InstanceState::Error);
    assert_eq!(
        row.state_reason.as_deref(),
        Some("the build did not finish within 1 s: its compute host stopped reporting on it")
    );
    assert_eq!(state(fresh).await.state, InstanceState::Pending);

    // The host comes back and reports the build done: that wins.
    send(
        &conductor,
        "instance_update",
        &update(
            building,
            InstanceState::Running,
            stratus_rpc::wire::conductor::next_sequence(),
        ),
    )
    .await;
    assert_eq!(state(building).await.state, InstanceState::Running);
    // Nothing is swept twice.
    assert_eq!(
        stratus_api::app::instances::build_timeout::sweep(&db, Duration::from_secs(1))
            .await
            .expect("sweep"),
        0
    );
}

#[tokio::test]
async fn a_guest_shutting_itself_down_is_terminated_when_its_behaviour_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite_in(dir.path()).await;
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let host = Arc::new(Host::default());
    let _serving = serve_host(&bus, "node1", host.clone()).await;
    let compute = ComputeClient::new(RpcClient::new(
        Arc::new(bus.clone()),
        Duration::from_secs(5),
    ));
    let service = ConductorService::new(Conductor::new(db.clone(), compute));
    let terminate = stratus_api::db::instances::InstanceAttributes {
        shutdown_behavior: stratus_api::db::instances::ShutdownBehavior::Terminate,
        ..Default::default()
    };

    // Stop (the default): a guest that powers off is stopped, nothing more.
    let stops = InstanceId::new();
    instance(&db, stops).await;
    report_all(
        &service,
        stops,
        &[
            ("node1", InstanceState::Running, 10, 1),
            ("node1", InstanceState::Stopped, 20, 1),
        ],
    )
    .await;
    assert_eq!(row_of(&db, stops).await.state, InstanceState::Stopped);

    // A user's stop goes through stopping: no termination either.
    let asked = InstanceId::new();
    instance(&db, asked).await;
    assert!(
        db.set_attributes(&asked.to_string(), &terminate)
            .await
            .expect("db")
    );
    report_all(
        &service,
        asked,
        &[
            ("node1", InstanceState::Running, 10, 1),
            ("node1", InstanceState::Stopping, 20, 1),
            ("node1", InstanceState::Stopped, 30, 1),
        ],
    )
    .await;
    assert_eq!(row_of(&db, asked).await.state, InstanceState::Stopped);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(host.calls.lock().expect("lock").is_empty());

    // Terminate: the power-off the host's sync reports ends the instance.
    let ends = InstanceId::new();
    instance(&db, ends).await;
    assert!(
        db.set_attributes(&ends.to_string(), &terminate)
            .await
            .expect("db")
    );
    report_all(
        &service,
        ends,
        &[
            ("node1", InstanceState::Running, 10, 1),
            ("node1", InstanceState::Stopped, 20, 1),
        ],
    )
    .await;
    let row = row_of(&db, ends).await;
    assert_eq!(
        (row.state, row.task_state.as_deref()),
        (InstanceState::ShuttingDown, Some("deleting"))
    );
    host.wait_for_a_call().await;
    assert_eq!(
        *host.calls.lock().expect("lock"),
        vec!["terminate_instance".to_owned()]
    );
    send(
        &service,
        "instance_update",
        &update(
            ends,
            InstanceState::Terminated,
            stratus_rpc::wire::conductor::next_sequence(),
        ),
    )
    .await;
    assert_eq!(row_of(&db, ends).await.state, InstanceState::Terminated);
}
