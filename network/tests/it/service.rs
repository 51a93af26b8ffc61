//! The network controller over RPC: typed results, and its errors as the
//! kinds callers (the API) turn into EC2 codes.

use std::sync::Arc;
use std::time::Duration;

use stratus_host::FakeHost;
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_network::error::kinds;
use stratus_network::service::NetworkService;
use stratus_rpc::clients::NetworkClient;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::{GetProjectNetwork, ReleaseFixedIp};
use stratus_rpc::{RequestContext, RpcClient, Target, Transport};
use stratus_test_support::fixtures;

/// A network controller (no DHCP, a fake host) serving on an in-process
/// bus, and a client of that bus; it stops serving on drop.
struct Served {
    rpc: RpcClient,
    _serving: stratus_rpc::ServerHandle,
    _state: tempfile::TempDir,
}

impl Served {
    async fn start(fixed_range: &str, network_size: u32) -> Self {
        let state = tempfile::tempdir().expect("tempdir");
        let config = NetworkConfig {
            fixed_range: fixed_range.into(),
            network_size,
            dhcp: false,
            ..NetworkConfig::default()
        };
        let manager = NetworkManager::start(&config, state.path(), Arc::new(FakeHost::new()))
            .await
            .expect("start");
        let bus = MemoryTransport::new(8, Duration::from_millis(50));
        let serving = bus
            .serve(
                "network",
                None,
                Arc::new(NetworkService::new(Arc::new(manager))),
            )
            .await
            .expect("serve");
        Self {
            rpc: RpcClient::new(Arc::new(bus), Duration::from_secs(5)),
            _serving: serving,
            _state: state,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_over_rpc_and_exhaustion_as_a_typed_remote_error() {
    let served = Served::start("10.5.0.0/29", 8).await;
    let rpc = served.rpc.clone();
    let client = NetworkClient::new(rpc.clone());
    let ctx = RequestContext::system();
    let request = |id| fixtures::allocate_fixed_ip(id, "p", "02:16:3e:00:00:01");

    let first = InstanceId::new();
    let fixed = client
        .allocate_fixed_ip(&ctx, &request(first))
        .await
        .expect("allocate");
    assert_eq!(
        (
            fixed.cidr.as_str(),
            fixed.netmask.as_str(),
            fixed.gateway.as_str(),
            fixed.bridge.as_str()
        ),
        ("10.5.0.0/29", "255.255.255.248", "10.5.0.1", "br100")
    );
    assert_eq!(fixed.dns, vec!["10.5.0.2".to_owned()]);
    for _ in 0..3 {
        client
            .allocate_fixed_ip(&ctx, &request(InstanceId::new()))
            .await
            .expect("fits");
    }
    let err = client
        .allocate_fixed_ip(&ctx, &request(InstanceId::new()))
        .await
        .expect_err("full");
    assert_eq!(
        err.remote().map(|r| r.kind.as_str()),
        Some(kinds::NO_MORE_FIXED_IPS),
        "{err}"
    );

    client
        .release_fixed_ip(&ctx, ReleaseFixedIp { instance_id: first })
        .await
        .expect("release");
    client
        .allocate_fixed_ip(&ctx, &request(InstanceId::new()))
        .await
        .expect("freed address reused");

    // A MAC that is not one never reaches the database.
    let bad = serde_json::json!({"instance_id": InstanceId::new(), "project_id": "p", "mac": "zz"});
    let err = rpc
        .call::<_, serde_json::Value>(&ctx, &Target::topic("network"), "allocate_fixed_ip", &bad)
        .await
        .expect_err("bad mac");
    assert_eq!(
        err.remote().map(|r| r.kind.as_str()),
        Some("InvalidArguments"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_network_over_rpc_is_the_network_its_instances_get() {
    let served = Served::start("10.6.0.0/24", 16).await;
    let client = NetworkClient::new(served.rpc.clone());
    let ctx = RequestContext::system();
    let ask = |project: &str| GetProjectNetwork {
        project_id: project.parse().expect("project id"),
    };
    let p = client.project_network(&ctx, &ask("p")).await.expect("p");
    assert_eq!(
        (p.cidr.as_str(), p.gateway.as_str()),
        ("10.6.0.0/28", "10.6.0.1")
    );
    let q = client.project_network(&ctx, &ask("q")).await.expect("q");
    assert_eq!(q.cidr, "10.6.0.16/28");
    let fixed = client
        .allocate_fixed_ip(
            &ctx,
            &fixtures::allocate_fixed_ip(InstanceId::new(), "p", "02:16:3e:00:00:01"),
        )
        .await
        .expect("allocate");
    assert_eq!((fixed.cidr, fixed.gateway), (p.cidr, p.gateway));
}
