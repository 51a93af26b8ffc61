//! IPAM behaviour, run against SQLite and against PostgreSQL.

use std::collections::HashSet;

use stratus_network::NetworkError;
use stratus_network::config::{ManagerKind, NetworkConfig};
use stratus_network::ipam::Ipam;
use stratus_network::ipam::layout::Layout;

use stratus_test_support::TestDb;

use crate::support::store;

fn layout(size: u32, range: &str) -> Layout {
    Layout::new(&NetworkConfig {
        manager: ManagerKind::Vlan,
        fixed_range: range.into(),
        network_size: size,
        ..NetworkConfig::default()
    })
    .expect("layout")
}

fn instance() -> String {
    uuid::Uuid::new_v4().to_string()
}

macro_rules! ipam_suite {
    ($module:ident, $db:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn allocation_is_idempotent_per_instance() {
                let db = $db;
                allocation_is_idempotent_per_instance_on(&db).await;
            }

            #[tokio::test]
            async fn projects_get_separate_networks() {
                let db = $db;
                projects_get_separate_networks_on(&db).await;
            }

            #[tokio::test]
            async fn exhaustion_is_an_error_and_release_frees() {
                let db = $db;
                exhaustion_is_an_error_and_release_frees_on(&db).await;
            }

            #[tokio::test]
            async fn a_project_network_is_made_once_and_is_the_one_allocations_use() {
                let db = $db;
                a_project_network_is_made_once_and_is_the_one_allocations_use_on(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_allocations_never_share_an_address() {
                let db = $db;
                concurrent_allocations_never_share_an_address_on(&db).await;
            }

            #[tokio::test]
            async fn a_requested_address_is_given_or_refused() {
                let db = $db;
                a_requested_address_is_given_or_refused_on(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_requests_for_one_instance_get_one_address() {
                let db = $db;
                concurrent_requests_for_one_instance_get_one_address_on(&db).await;
            }
        }
    };
}

ipam_suite!(sqlite, TestDb::sqlite());
ipam_suite!(postgres, TestDb::postgres());

async fn allocation_is_idempotent_per_instance_on(db: &TestDb) {
    let ipam = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    let id = instance();
    let first = ipam
        .allocate(&id, "p1", "02:00:00:00:00:01", "i-1")
        .await
        .expect("allocate");
    let again = ipam
        .allocate(&id, "p1", "02:00:00:00:00:01", "i-1")
        .await
        .expect("again");
    assert_eq!(first, again);
    assert_eq!(first.network.cidr, "10.0.0.0/24");
    assert_eq!(
        (
            first.network.gateway.as_str(),
            first.network.dhcp_server.as_str()
        ),
        ("10.0.0.1", "10.0.0.2")
    );
    assert_eq!(
        (first.network.vlan, first.network.bridge.as_str()),
        (Some(100), "br100")
    );
    let address: std::net::Ipv4Addr = first.address.parse().expect("address");
    assert!(
        address.octets()[3] >= 3 && address.octets()[3] <= 254,
        "{address} is reserved"
    );
}

async fn projects_get_separate_networks_on(db: &TestDb) {
    let ipam = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    let a = ipam
        .allocate(&instance(), "alpha", "02:00:00:00:00:01", "a")
        .await
        .expect("a");
    let b = ipam
        .allocate(&instance(), "beta", "02:00:00:00:00:02", "b")
        .await
        .expect("b");
    let a2 = ipam
        .allocate(&instance(), "alpha", "02:00:00:00:00:03", "a2")
        .await
        .expect("a2");
    assert_ne!(a.network.cidr, b.network.cidr);
    assert_eq!(a.network, a2.network);
    assert_eq!(b.network.vlan, Some(101));
}

async fn a_project_network_is_made_once_and_is_the_one_allocations_use_on(db: &TestDb) {
    let ipam = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    // Asked before any allocation: made now, in the lowest free slot.
    let alpha = ipam.network_for("alpha").await.expect("alpha's network");
    assert_eq!(
        (alpha.cidr.as_str(), alpha.gateway.as_str()),
        ("10.0.0.0/24", "10.0.0.1")
    );
    assert_eq!(ipam.network_for("alpha").await.expect("again"), alpha);
    let beta = ipam.network_for("beta").await.expect("beta's network");
    assert_eq!(beta.cidr, "10.0.1.0/24");
    let held = ipam
        .allocate(&instance(), "alpha", "02:00:00:00:00:01", "a")
        .await
        .expect("allocate");
    assert_eq!(held.network, alpha);
    assert_eq!(ipam.store().networks().await.expect("networks").len(), 2);
}

async fn exhaustion_is_an_error_and_release_frees_on(db: &TestDb) {
    // /29 networks: 8 addresses, 4 for instances; one network only.
    let ipam = Ipam::new(store(db).await, layout(8, "10.9.0.0/29"));
    let mut held = Vec::new();
    for i in 0..4 {
        let id = instance();
        ipam.allocate(&id, "p", &format!("02:00:00:00:00:0{i}"), "x")
            .await
            .expect("fits");
        held.push(id);
    }
    let err = ipam
        .allocate(&instance(), "p", "02:00:00:00:00:09", "x")
        .await
        .expect_err("full");
    assert!(matches!(err, NetworkError::NoMoreFixedIps { .. }), "{err}");
    let err = ipam
        .allocate(&instance(), "other", "02:00:00:00:00:0a", "x")
        .await
        .expect_err("no slot");
    assert!(
        matches!(err, NetworkError::NoMoreNetworks { networks: 1 }),
        "{err}"
    );

    let released = ipam
        .release(&held[0])
        .await
        .expect("release")
        .expect("held one");
    assert!(
        ipam.release(&held[0])
            .await
            .expect("release twice")
            .is_none()
    );
    let again = ipam
        .allocate(&instance(), "p", "02:00:00:00:00:0b", "y")
        .await
        .expect("freed");
    assert_eq!(again.address, released.address);
}

async fn concurrent_allocations_never_share_an_address_on(db: &TestDb) {
    // Two controllers (two pools) on one database, 200 instances at once.
    let first = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    let second = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let ipam = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.spawn(async move {
            let project = format!("p{}", i % 3);
            ipam.allocate(&instance(), &project, "02:00:00:00:00:01", "x")
                .await
        });
    }
    let mut seen = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        let row = done.expect("task").expect("allocate");
        assert!(
            seen.insert(row.address.clone()),
            "{} handed out twice",
            row.address
        );
    }
    assert_eq!(seen.len(), 200);
    assert_eq!(first.store().networks().await.expect("networks").len(), 3);
}

async fn concurrent_requests_for_one_instance_get_one_address_on(db: &TestDb) {
    let ipam = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    let id = instance();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (ipam, id) = (ipam.clone(), id.clone());
        tasks.spawn(async move { ipam.allocate(&id, "p", "02:00:00:00:00:01", "x").await });
    }
    let mut addresses = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        addresses.insert(done.expect("task").expect("allocate").address);
    }
    assert_eq!(addresses.len(), 1, "{addresses:?}");
}

async fn a_requested_address_is_given_or_refused_on(db: &TestDb) {
    let ipam = Ipam::new(store(db).await, layout(256, "10.0.0.0/16"));
    let ask = |id: String, project: &'static str, address: &str| {
        let ipam = ipam.clone();
        let wanted: std::net::Ipv4Addr = address.parse().expect("address");
        async move {
            ipam.allocate_before(&id, project, "02:00:00:00:00:01", "i-x", None, Some(wanted))
                .await
        }
    };
    let first = instance();
    let given = ask(first.clone(), "p1", "10.0.0.42")
        .await
        .expect("free address");
    assert_eq!(given.address, "10.0.0.42");
    assert_eq!(given.network.cidr, "10.0.0.0/24");
    // Asked again for the same instance: the address it holds.
    let again = ask(first.clone(), "p1", "10.0.0.42").await.expect("again");
    assert_eq!(again, given);
    // Another instance asking for it is refused, naming the address.
    match ask(instance(), "p1", "10.0.0.42").await {
        Err(NetworkError::FixedIpTaken { address, cidr }) => {
            assert_eq!(
                (address.as_str(), cidr.as_str()),
                ("10.0.0.42", "10.0.0.0/24")
            );
        }
        other => panic!("taken: {other:?}"),
    }
    // The network's own addresses and anything outside it are refused.
    for reserved in [
        "10.0.0.0",
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.255",
        "10.0.1.7",
        "192.168.0.5",
    ] {
        match ask(instance(), "p1", reserved).await {
            Err(e @ NetworkError::FixedIpNotInNetwork { .. }) => {
                assert!(e.to_string().contains(reserved), "{e}");
            }
            other => panic!("{reserved}: {other:?}"),
        }
    }
    // Another project's network is its own: 10.0.1.7 is a host of it.
    let theirs = ask(instance(), "p2", "10.0.1.7")
        .await
        .expect("p2's address");
    assert_eq!(theirs.network.cidr, "10.0.1.0/24");
    match ask(instance(), "p2", "10.0.0.50").await {
        Err(NetworkError::FixedIpNotInNetwork { .. }) => {}
        other => panic!("p1's range from p2: {other:?}"),
    }
    // Released, it can be asked for again; refusals took nothing.
    ipam.release(&first).await.expect("release");
    let next = ask(instance(), "p1", "10.0.0.42").await.expect("freed");
    assert_eq!(next.address, "10.0.0.42");
    let holders = ipam.store().holders().await.expect("holders");
    assert_eq!(holders.len(), 2, "{holders:?}");
}
