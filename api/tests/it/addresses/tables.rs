//! The address tables on SQLite and on PostgreSQL, allocations racing from
//! two api processes over one database, and the conductor's side: the full
//! listing the network host reconciles from, and the addresses freed when a
//! host reports an instance terminated.

use std::sync::Arc;
use std::time::Duration;

use stratus_api::app::addresses;
use stratus_api::conductor::Conductor;
use stratus_api::config::{ApiConfig, PublicAddressing};
use stratus_api::db::Db;
use stratus_api::db::addresses::{AUTO, AddressRow, ELASTIC};
use stratus_api::db::instances::{InstanceRow, NewReservation, StateChange};
use stratus_api::ec2::{Caller, Cloud};
use stratus_api::service::ConductorService;
use stratus_rpc::clients::{ComputeClient, NetworkClient};
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::addresses::{PublicAddresses, PublicAddressesQuery, PublicMapping};
use stratus_rpc::wire::conductor::{InstanceState, InstanceUpdate, next_sequence};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{Handler, RequestContext, RpcClient, Transport};
use stratus_test_support::TestDb;
use stratus_test_support::stand_in;

use crate::db::open;
use crate::endpoint::network::Network;

/// A pending instance of `project`, stored; its UUID.
async fn instance(db: &Db, project: &str, wants_public_ip: bool) -> String {
    let id = InstanceId::new();
    let row = InstanceRow {
        uuid: id.to_string(),
        ec2_id: id.ec2_id(),
        project_id: project.into(),
        user_id: "u".into(),
        reservation_id: format!("r-{}", &id.ec2_id()[2..]),
        image_id: "ami-00000000000000001".into(),
        instance_type: "m1.tiny".into(),
        vcpus: 1,
        memory_mb: 512,
        root_gb: 1,
        state: InstanceState::Pending,
        launched_at: stratus_api::db::now(),
        updated_at: stratus_api::db::now(),
        wants_public_ip,
        ..InstanceRow::default()
    };
    db.insert_reservation(&NewReservation {
        reservation_id: row.reservation_id.clone(),
        project_id: project.into(),
        client_token: None,
        instances: vec![row],
        tags: vec![],
    })
    .await
    .expect("store instance");
    id.to_string()
}

fn address(ip: &str, project: &str, kind: &str, instance: Option<&str>) -> AddressRow {
    AddressRow {
        public_ip: ip.into(),
        project_id: project.into(),
        allocation_id: stratus_api::ec2::ids::new_id("eipalloc"),
        domain: "vpc".into(),
        kind: kind.into(),
        instance_uuid: instance.map(str::to_owned),
        association_id: None,
        created_at: stratus_api::db::now(),
        ..AddressRow::default()
    }
}

async fn public_ip_of(db: &Db, uuid: &str) -> Option<String> {
    let row = db
        .instance_by_uuid(uuid)
        .await
        .expect("read")
        .expect("instance");
    row.public_ip
}

async fn addresses_behave_alike(db: Db) {
    let one = instance(&db, "p1", true).await;
    let row = db
        .instance_by_uuid(&one)
        .await
        .expect("read")
        .expect("instance");
    assert!(row.wants_public_ip);
    assert_eq!(row.public_ip, None);
    assert!(
        !db.wants_public_ip(&instance(&db, "p1", false).await)
            .await
            .expect("read")
    );

    let elastic = address("172.24.4.2", "p1", ELASTIC, None);
    db.insert_address(&elastic).await.expect("elastic");
    let auto = address("172.24.4.3", "p1", AUTO, Some(&one));
    db.insert_address(&auto).await.expect("auto");
    assert_eq!(public_ip_of(&db, &one).await.as_deref(), Some("172.24.4.3"));
    // Taken addresses, and a second address for one instance, are refused.
    let again = db
        .insert_address(&address("172.24.4.2", "p2", ELASTIC, None))
        .await;
    assert!(again.expect_err("taken").is_unique_violation());
    let second = db
        .insert_address(&address("172.24.4.4", "p1", AUTO, Some(&one)))
        .await;
    assert!(second.expect_err("one per instance").is_unique_violation());
    assert_eq!(
        db.allocated_addresses().await.expect("list").len(),
        2,
        "refused inserts leave nothing"
    );
    assert!(db.addresses("p2").await.expect("p2").is_empty());

    // Association replaces the launch address, guarded by what was read.
    let before = db.addresses("p1").await.expect("read");
    assert!(
        db.associate_address(&elastic, &one, "eipassoc-00000000000000001")
            .await
            .expect("associate")
    );
    assert_eq!(public_ip_of(&db, &one).await.as_deref(), Some("172.24.4.2"));
    assert!(db.address("172.24.4.3").await.expect("read").is_none());
    assert_eq!(
        db.public_mappings().await.expect("mappings"),
        [("172.24.4.2".to_owned(), one.clone())]
    );
    let read = db
        .address("172.24.4.2")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        read.instance_ec2_id,
        Some(one.parse::<InstanceId>().expect("uuid").ec2_id())
    );
    assert!(
        !db.associate_address(&elastic, &one, "eipassoc-00000000000000002")
            .await
            .expect("stale")
    );

    // An undo puts back what was read.
    let as_read: Vec<AddressRow> = before
        .into_iter()
        .map(|a| AddressRow {
            instance_ec2_id: None,
            private_ip: None,
            ..a
        })
        .collect();
    db.restore_addresses(&as_read, &[]).await.expect("restore");
    assert_eq!(public_ip_of(&db, &one).await.as_deref(), Some("172.24.4.3"));
    assert_eq!(
        db.address("172.24.4.2")
            .await
            .expect("read")
            .expect("there")
            .instance_uuid,
        None
    );

    // Gone: the launch address deleted, an Elastic IP disassociated.
    assert!(
        db.associate_address(&as_read[0], &one, "eipassoc-00000000000000003")
            .await
            .expect("associate")
    );
    assert!(
        !db.disassociate_address("172.24.4.2", "eipassoc-00000000000000009")
            .await
            .expect("wrong id")
    );
    assert!(
        db.disassociate_address("172.24.4.2", "eipassoc-00000000000000003")
            .await
            .expect("disassociate")
    );
    db.insert_address(&address("172.24.4.5", "p1", AUTO, Some(&one)))
        .await
        .expect("auto");
    let elastic = db
        .address("172.24.4.2")
        .await
        .expect("read")
        .expect("there");
    assert!(
        db.associate_address(&elastic, &one, "eipassoc-00000000000000004")
            .await
            .expect("associate")
    );
    let two = instance(&db, "p1", true).await;
    db.insert_address(&address("172.24.4.6", "p1", AUTO, Some(&two)))
        .await
        .expect("auto");
    for uuid in [&one, &two] {
        let applied = db
            .update_state(
                uuid,
                &StateChange::to(InstanceState::Terminated, i64::MAX / 2),
            )
            .await
            .expect("terminate");
        assert!(applied);
        assert_eq!(public_ip_of(&db, uuid).await, None);
    }
    let left = db.addresses("p1").await.expect("read");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].public_ip, "172.24.4.2");
    assert_eq!(
        (
            left[0].instance_uuid.as_deref(),
            left[0].association_id.as_deref()
        ),
        (None, None)
    );
    assert!(db.public_mappings().await.expect("mappings").is_empty());
    assert!(db.delete_address("172.24.4.2").await.expect("delete"));
    assert!(!db.delete_address("172.24.4.2").await.expect("gone"));
}

#[tokio::test]
async fn address_tables_on_sqlite() {
    let db = TestDb::sqlite();
    addresses_behave_alike(open(&db).await).await;
}

#[tokio::test]
async fn address_tables_on_postgres() {
    let db = TestDb::postgres();
    addresses_behave_alike(open(&db).await).await;
}

/// A controller over the database at `url` with the public range `range`.
async fn cloud_over(url: &str, range: &str) -> Arc<Cloud> {
    let config = ApiConfig {
        public: Some(PublicAddressing {
            range: range.parse().expect("range"),
            on_launch: true,
            dns_domain: "compute.stratus".into(),
        }),
        ..ApiConfig::default()
    };
    let db = Db::connect(url).await.expect("connect");
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let rpc = RpcClient::new(Arc::new(bus), Duration::from_secs(1));
    Arc::new(Cloud::new(db, config, rpc))
}

/// Two api processes (two controllers, two pools) allocating at once over
/// one database each get distinct addresses.
async fn racing_allocations_take_distinct_addresses(test: TestDb) {
    let url = test.url();
    let clouds = [
        cloud_over(&url, "172.24.4.0/27").await,
        cloud_over(&url, "172.24.4.0/27").await,
    ];
    let mut tasks = Vec::new();
    for n in 0..12 {
        let cloud = clouds[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            let caller = Caller {
                project_id: format!("p{}", n % 4),
                user_id: "u".into(),
                is_admin: false,
            };
            addresses::allocate(&cloud, &caller, "vpc", None).await
        }));
    }
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.expect("task").expect("allocated").public_ip);
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 12, "{got:?}");
    assert!(
        !got.contains(&"172.24.4.1".to_owned()),
        "the gateway is never handed out"
    );
}

#[tokio::test]
async fn racing_allocations_on_sqlite() {
    racing_allocations_take_distinct_addresses(TestDb::sqlite()).await;
}

#[tokio::test]
async fn racing_allocations_on_postgres() {
    racing_allocations_take_distinct_addresses(TestDb::postgres()).await;
}

#[tokio::test]
async fn the_conductor_lists_every_association_and_tells_the_network_what_a_termination_frees() {
    let test = TestDb::sqlite();
    let db = open(&test).await;
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let network = Arc::new(Network::default());
    let _serving = bus
        .serve("network", None, stand_in::handler(&network))
        .await
        .expect("serve the network topic");
    let rpc = RpcClient::new(Arc::new(bus.clone()), Duration::from_secs(2));
    let service = ConductorService::new(
        Conductor::new(db.clone(), ComputeClient::new(rpc.clone()))
            .with_network(NetworkClient::new(rpc)),
    );
    let (one, two) = (
        instance(&db, "p1", true).await,
        instance(&db, "p2", true).await,
    );
    db.insert_address(&address("172.24.4.2", "p1", AUTO, Some(&one)))
        .await
        .expect("auto");
    db.insert_address(&address("172.24.4.3", "p2", ELASTIC, Some(&two)))
        .await
        .expect("elastic");
    db.insert_address(&address("172.24.4.4", "p2", ELASTIC, None))
        .await
        .expect("free");

    let before = next_sequence();
    let args = serde_json::value::to_raw_value(&PublicAddressesQuery {}).expect("encode");
    let answer = service
        .handle(&RequestContext::system(), "public_addresses", &args)
        .await
        .expect("listing");
    let listing: PublicAddresses = serde_json::from_str(answer.get()).expect("decode");
    let mapping = |a: &str, uuid: &str| PublicMapping {
        address: a.parse().expect("address"),
        instance_id: uuid.parse().expect("uuid"),
    };
    assert_eq!(
        listing.mappings,
        [mapping("172.24.4.2", &one), mapping("172.24.4.3", &two)]
    );
    assert!(listing.as_of > before && listing.as_of < next_sequence());

    // The host reports the first terminated: its address is freed and the
    // network host told to clear it.
    let update = InstanceUpdate {
        instance_id: one.parse().expect("uuid"),
        host: Some("node1".parse().expect("host")),
        state: InstanceState::Terminated,
        task_state: None,
        reason: None,
        sequence: next_sequence(),
        attempt: 1,
    };
    let args = serde_json::value::to_raw_value(&update).expect("encode");
    service
        .handle(&RequestContext::system(), "instance_update", &args)
        .await
        .expect("report");
    let told = network.wait_for(|m| !m.clear.is_empty()).await;
    assert_eq!(
        told.clear,
        ["172.24.4.2".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    assert!(told.set.is_empty());
    assert!(told.sequence > listing.as_of);
    let listing = addresses::listing(&db).await.expect("listing");
    assert_eq!(listing.mappings, [mapping("172.24.4.3", &two)]);
}

#[tokio::test]
async fn the_metadata_service_tells_an_instance_its_public_address_and_name() {
    use std::net::Ipv4Addr;

    use stratus_api::metadata::db_source::DbSource;

    use crate::metadata::{get, serve_source};

    let test = TestDb::sqlite();
    let db = open(&test).await;
    let (with, without) = (
        instance(&db, "p1", true).await,
        instance(&db, "p1", false).await,
    );
    let (from_with, from_without) = (Ipv4Addr::new(127, 0, 0, 41), Ipv4Addr::new(127, 0, 0, 42));
    db.set_placement(&with, &from_with.to_string(), "nova")
        .await
        .expect("placement");
    db.set_placement(&without, &from_without.to_string(), "nova")
        .await
        .expect("placement");
    db.insert_address(&address("172.24.4.9", "p1", AUTO, Some(&with)))
        .await
        .expect("auto");
    let source = DbSource::new(db.clone()).with_dns_domain(Some("compute.stratus".into()));
    let server = serve_source(Arc::new(source), false).await;

    let text = |answer: (u16, Vec<u8>)| (answer.0, String::from_utf8_lossy(&answer.1).into_owned());
    assert_eq!(
        text(get(from_with, server, "/latest/meta-data/public-ipv4").await),
        (200, "172.24.4.9".to_owned())
    );
    assert_eq!(
        text(get(from_with, server, "/latest/meta-data/public-hostname").await),
        (200, "ec2-172-24-4-9.compute.stratus".to_owned())
    );
    let (_, index) = text(get(from_with, server, "/latest/meta-data/").await);
    assert!(index.lines().any(|l| l == "public-ipv4"), "{index}");
    assert!(index.lines().any(|l| l == "public-hostname"), "{index}");
    assert!(index.lines().any(|l| l == "local-ipv4"), "{index}");

    // Without a public address: neither listed nor served.
    let (_, index) = text(get(from_without, server, "/latest/meta-data/").await);
    assert!(
        !index.contains("public-ipv4") && !index.contains("public-hostname"),
        "{index}"
    );
    for path in [
        "/latest/meta-data/public-ipv4",
        "/latest/meta-data/public-hostname",
    ] {
        assert_eq!(get(from_without, server, path).await.0, 404, "{path}");
    }
}
