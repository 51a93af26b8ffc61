//! The conductor over the database: reports land in the instance tables
//! (newest first), the metadata service answers from them, and a host still
//! building an instance the user terminated is told to stop.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_api::conductor::Conductor;
use stratus_api::db::Db;
use stratus_api::db::instances::{InstanceRow, NewReservation};
use stratus_api::metadata::db_source::DbSource;
use stratus_api::service::ConductorService;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::handler::null;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::conductor::{GuestMetadata, InstanceState, InstanceUpdate};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{Handler, HandlerError, RequestContext, RpcClient, Transport};

use crate::metadata::{get, serve_source};

/// Records the methods compute hosts are asked to run.
#[derive(Default)]
struct Host {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Handler for Host {
    async fn handle(
        &self,
        _: &RequestContext,
        method: &str,
        _: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        self.calls.lock().expect("lock").push(method.to_owned());
        Ok(null())
    }
}

async fn instance(db: &Db, id: InstanceId) {
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
        state: "pending".into(),
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

fn update(id: InstanceId, state: InstanceState, sequence: u64) -> InstanceUpdate {
    InstanceUpdate {
        instance_id: id,
        host: Some("node1".parse().expect("host")),
        state,
        task_state: None,
        reason: None,
        sequence,
    }
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
    let db = Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("api.sqlite").display()
    ))
    .await
    .expect("db");
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let host = Arc::new(Host::default());
    let _serving = bus
        .serve(
            "compute",
            Some(&"node1".parse().expect("host")),
            host.clone(),
        )
        .await
        .expect("serve");
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
    let row = db
        .instance_by_uuid(&id.to_string())
        .await
        .expect("db")
        .expect("row");
    assert_eq!(
        (row.state.as_str(), row.host.as_deref()),
        ("running", Some("node1"))
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
    let row = db
        .instance_by_uuid(&id.to_string())
        .await
        .expect("db")
        .expect("row");
    assert!(row.terminated_at.is_some());

    // Terminated by its user while a host was building it: the host's
    // "running" report does not revive it; the host is told to terminate.
    let late = InstanceId::new();
    instance(&db, late).await;
    db.update_state(&late.to_string(), "terminated", None, None, None, 5)
        .await
        .expect("terminate");
    send(
        &service,
        "instance_update",
        &update(late, InstanceState::Running, 50),
    )
    .await;
    let row = db
        .instance_by_uuid(&late.to_string())
        .await
        .expect("db")
        .expect("row");
    assert_eq!(row.state, "terminated");
    for _ in 0..100 {
        if host
            .calls
            .lock()
            .expect("lock")
            .contains(&"terminate_instance".to_owned())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*host.calls.lock().expect("lock"), ["terminate_instance"]);
}
