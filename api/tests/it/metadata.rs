//! The metadata service over HTTP: answers by source address (clients bind
//! different loopback addresses), nothing for strangers, user data byte for
//! byte, IMDSv2 tokens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use stratus_api::metadata::server::{Metadata, TOKEN_HEADER, TTL_HEADER, router};
use stratus_api::metadata::{InstanceMetadata, MemorySource};

fn instance(n: u8, user_data: Option<Vec<u8>>) -> InstanceMetadata {
    InstanceMetadata {
        instance_id: format!("i-0000000000000000{n}"),
        uuid: format!("00000000-0000-0000-0000-00000000000{n}"),
        hostname: format!("i-0000000000000000{n}"),
        local_ipv4: Ipv4Addr::new(127, 0, 0, 10 + n),
        ami_id: "ami-00000001".into(),
        reservation_id: format!("r-0000000000000000{n}"),
        availability_zone: "nova".into(),
        security_groups: vec!["default".into(), "web".into()],
        key: Some((format!("key{n}"), format!("ssh-ed25519 AAAA{n} user@host"))),
        user_data,
        public_ipv4: None,
        public_hostname: None,
    }
}

async fn serve(require_token: bool) -> (SocketAddr, Arc<MemorySource>) {
    let source = Arc::new(MemorySource::default());
    (serve_source(source.clone(), require_token).await, source)
}

/// Serves `source` on a loopback port.
pub async fn serve_source(
    source: Arc<dyn stratus_api::metadata::MetadataSource>,
    require_token: bool,
) -> SocketAddr {
    let app = router(Metadata::new(source, require_token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    // As `stratus api` serves it: the peer's address is what identifies
    // the instance asking.
    tokio::spawn(stratus_api::serve::serve(
        listener,
        app,
        std::time::Duration::from_secs(30),
    ));
    address
}

/// A client whose requests come from `from`.
fn client(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .build()
        .expect("client")
}

pub async fn get(from: Ipv4Addr, server: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let response = client(from)
        .get(format!("http://{server}{path}"))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn each_instance_sees_its_own_metadata_by_source_address() {
    let (server, source) = serve(false).await;
    let binary: Vec<u8> = (0..=255u8).chain(b"#!/bin/sh\n".iter().copied()).collect();
    source.insert(instance(1, Some(binary.clone())));
    source.insert(instance(2, None));
    let (one, two, stranger) = (
        Ipv4Addr::new(127, 0, 0, 11),
        Ipv4Addr::new(127, 0, 0, 12),
        Ipv4Addr::new(127, 0, 0, 99),
    );

    let cases = [
        ("/latest/meta-data/instance-id", "i-00000000000000001"),
        ("/latest/meta-data/hostname", "i-00000000000000001"),
        ("/latest/meta-data/local-ipv4", "127.0.0.11"),
        ("/latest/meta-data/placement/availability-zone", "nova"),
        ("/latest/meta-data/ami-id", "ami-00000001"),
        ("/latest/meta-data/reservation-id", "r-00000000000000001"),
        ("/latest/meta-data/security-groups", "default\nweb"),
        ("/latest/meta-data/public-keys/", "0=key1"),
        (
            "/latest/meta-data/public-keys/0/openssh-key",
            "ssh-ed25519 AAAA1 user@host",
        ),
    ];
    for (path, want) in cases {
        let (status, body) = get(one, server, path).await;
        assert_eq!(
            (status, String::from_utf8_lossy(&body).as_ref()),
            (200, want),
            "{path}"
        );
    }
    let (status, index) = get(one, server, "/latest/meta-data/").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&index).contains("instance-id\n"));

    // User data byte for byte, including bytes that are not UTF-8.
    assert_eq!(get(one, server, "/latest/user-data").await, (200, binary));
    assert_eq!(get(two, server, "/latest/user-data").await.0, 404);

    // The second instance sees itself, never the first.
    let (_, id) = get(two, server, "/latest/meta-data/instance-id").await;
    assert_eq!(id, b"i-00000000000000002");
    let (_, json) = get(two, server, "/openstack/latest/meta_data.json").await;
    let meta: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(meta["uuid"], "00000000-0000-0000-0000-000000000002");
    assert_eq!(meta["public_keys"]["key2"], "ssh-ed25519 AAAA2 user@host");

    // A stranger (no instance at that address) and unknown paths get 404.
    for path in [
        "/latest/meta-data/instance-id",
        "/latest/user-data",
        "/openstack/latest/meta_data.json",
    ] {
        assert_eq!(get(stranger, server, path).await.0, 404, "{path}");
    }
    for path in [
        "/latest/meta-data/public-keys/1/openssh-key",
        "/latest/meta-data/../../etc/passwd",
        "/nope",
    ] {
        assert_eq!(get(one, server, path).await.0, 404, "{path}");
    }
}

#[tokio::test]
async fn imdsv2_tokens_are_issued_bound_to_the_caller_and_checked() {
    let (server, source) = serve(true).await;
    source.insert(instance(1, None));
    source.insert(instance(2, None));
    let (one, two) = (Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 12));
    let url = |p: &str| format!("http://{server}{p}");

    // Without a token (required here): refused.
    assert_eq!(
        get(one, server, "/latest/meta-data/instance-id").await.0,
        401
    );
    // A token needs a valid TTL.
    let bad = put_token_with_ttl(one, server, "0").await;
    assert_eq!(bad.status().as_u16(), 400);
    let token = put_token_with_ttl(one, server, "60")
        .await
        .text()
        .await
        .expect("token");
    let with = |from, t: &str| {
        let t = t.to_owned();
        async move {
            let r = client(from)
                .get(url("/latest/meta-data/instance-id"))
                .header(TOKEN_HEADER, t)
                .send()
                .await
                .expect("get");
            (r.status().as_u16(), r.text().await.expect("text"))
        }
    };
    assert_eq!(with(one, &token).await, (200, "i-00000000000000001".into()));
    // Another instance cannot use it, and a made-up token fails.
    assert_eq!(with(two, &token).await.0, 401);
    assert_eq!(with(one, "forged").await.0, 401);
}

/// `PUT /latest/api/token` from `from` with a TTL of 60 s: status and body.
async fn put_token(from: Ipv4Addr, server: SocketAddr) -> (u16, String) {
    let r = put_token_with_ttl(from, server, "60").await;
    (r.status().as_u16(), r.text().await.expect("text"))
}

/// `PUT /latest/api/token` from `from` asking for `ttl` seconds.
async fn put_token_with_ttl(from: Ipv4Addr, server: SocketAddr, ttl: &str) -> reqwest::Response {
    client(from)
        .put(format!("http://{server}/latest/api/token"))
        .header(TTL_HEADER, ttl)
        .send()
        .await
        .expect("put")
}

/// `GET path` from `from` carrying `token`: status and body.
async fn get_with(from: Ipv4Addr, server: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let r = client(from)
        .get(format!("http://{server}{path}"))
        .header(TOKEN_HEADER, token)
        .send()
        .await
        .expect("get");
    (r.status().as_u16(), r.text().await.expect("text"))
}

/// Whether `body` holds anything of instance `n` (its ids, key or uuid).
fn tells_of(body: &str, n: u8) -> bool {
    let i = instance(n, None);
    [i.instance_id, i.uuid, i.reservation_id, format!("AAAA{n}")]
        .iter()
        .any(|s| body.contains(s.as_str()))
}

const PATHS: [&str; 4] = [
    "/latest/meta-data/instance-id",
    "/latest/meta-data/public-keys/0/openssh-key",
    "/latest/user-data",
    "/openstack/latest/meta_data.json",
];

#[tokio::test]
async fn a_token_is_refused_once_its_address_passes_to_another_instance() {
    for require_token in [true, false] {
        let (server, source) = serve(require_token).await;
        source.insert(instance(1, Some(b"one's secret".to_vec())));
        let address = Ipv4Addr::new(127, 0, 0, 11);
        let (status, token) = put_token(address, server).await;
        assert_eq!(status, 200);
        let (status, id) = get_with(address, server, PATHS[0], &token).await;
        assert_eq!((status, id.as_str()), (200, "i-00000000000000001"));

        // Instance 1 goes; instance 3 gets its address.
        source.remove_instance(&instance(1, None).uuid);
        source.insert(InstanceMetadata {
            local_ipv4: address,
            ..instance(3, Some(b"three's secret".to_vec()))
        });
        for path in PATHS {
            let (status, body) = get_with(address, server, path, &token).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(!tells_of(&body, 1) && !tells_of(&body, 3), "{path}: {body}");
            assert!(!body.contains("secret"), "{path}: {body}");
        }
        // The new holder asks for its own token and sees itself.
        let (_, fresh) = put_token(address, server).await;
        assert_ne!(fresh, token);
        let (status, id) = get_with(address, server, PATHS[0], &fresh).await;
        assert_eq!((status, id.as_str()), (200, "i-00000000000000003"));
        let (status, data) = get_with(address, server, PATHS[2], &fresh).await;
        assert_eq!((status, data.as_str()), (200, "three's secret"));
        // The address going back to instance 1 does not revive the old
        // token for instance 3's holder, nor the reverse.
        source.remove_instance(&instance(3, None).uuid);
        source.insert(instance(1, None));
        assert_eq!(get_with(address, server, PATHS[0], &fresh).await.0, 401);
    }
}

#[tokio::test]
async fn a_token_from_one_address_is_refused_from_another() {
    for require_token in [true, false] {
        let (server, source) = serve(require_token).await;
        source.insert(instance(1, Some(b"one's secret".to_vec())));
        source.insert(instance(2, Some(b"two's secret".to_vec())));
        let (one, two) = (Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 12));
        let (status, token) = put_token(one, server).await;
        assert_eq!(status, 200);
        for path in PATHS {
            let (status, body) = get_with(two, server, path, &token).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(!tells_of(&body, 1) && !tells_of(&body, 2), "{path}: {body}");
            assert!(!body.contains("secret"), "{path}: {body}");
        }
        // Still good where it was issued.
        let (status, data) = get_with(one, server, PATHS[2], &token).await;
        assert_eq!((status, data.as_str()), (200, "one's secret"));
    }
}

#[tokio::test]
async fn an_address_no_instance_holds_gets_404_even_for_a_token() {
    for require_token in [true, false] {
        let (server, source) = serve(require_token).await;
        source.insert(instance(1, None));
        let (one, stranger) = (Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 99));
        let (status, body) = put_token(stranger, server).await;
        assert_eq!((status, body.as_str()), (404, "Not Found"));
        // Not even with a TTL that would be refused: strangers learn nothing.
        let bad = put_token_with_ttl(stranger, server, "0").await;
        assert_eq!(bad.status().as_u16(), 404);
        // A token of an instance, presented from an address nobody holds.
        let (_, token) = put_token(one, server).await;
        for path in PATHS {
            let (status, body) = get_with(stranger, server, path, &token).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert!(!tells_of(&body, 1), "{path}: {body}");
            assert_eq!(get(stranger, server, path).await.0, 404, "{path}");
        }
        // The address an instance leaves is a stranger's from then on.
        source.remove_instance(&instance(1, None).uuid);
        assert_eq!(get_with(one, server, PATHS[0], &token).await.0, 404);
        assert_eq!(put_token(one, server).await.0, 404);
    }
}

#[tokio::test]
async fn a_token_dies_with_its_instance_when_the_tables_give_the_address_to_another() {
    use stratus_api::metadata::db_source::DbSource;
    use stratus_rpc::wire::ids::InstanceId;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = crate::conductor::sqlite_in(dir.path()).await;
    let server = serve_source(Arc::new(DbSource::new(db.clone())), true).await;
    let address = Ipv4Addr::new(127, 0, 0, 41);
    let (first, second) = (InstanceId::new(), InstanceId::new());
    crate::conductor::instance(&db, first).await;
    db.set_placement(&first.to_string(), &address.to_string(), "nova")
        .await
        .expect("placement");
    let (status, token) = put_token(address, server).await;
    assert_eq!(status, 200);
    let (status, id) = get_with(address, server, PATHS[0], &token).await;
    assert_eq!((status, id), (200, first.ec2_id()));

    // The first is terminated; the address goes to the second.
    assert!(
        db.update_state(
            &first.to_string(),
            &stratus_api::db::instances::StateChange::to(
                stratus_rpc::wire::conductor::InstanceState::Terminated,
                9,
            ),
        )
        .await
        .expect("terminate")
    );
    assert_eq!(get_with(address, server, PATHS[0], &token).await.0, 404);
    crate::conductor::instance(&db, second).await;
    db.set_placement(&second.to_string(), &address.to_string(), "nova")
        .await
        .expect("placement");
    let (status, body) = get_with(address, server, PATHS[0], &token).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(&first.ec2_id()) && !body.contains(&second.ec2_id()));
    let (_, fresh) = put_token(address, server).await;
    let (status, id) = get_with(address, server, PATHS[0], &fresh).await;
    assert_eq!((status, id), (200, second.ec2_id()));
}
