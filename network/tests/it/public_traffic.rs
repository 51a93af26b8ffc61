//! Public addresses on real traffic, in namespaces: the outside reaches a
//! guest on its public address (DNAT), the guest's connections to the
//! outside come from it (SNAT), and a cleared address leads nowhere.

use std::sync::Arc;
use std::time::Duration;

use stratus_host::RealHost;
use stratus_network::NetworkManager;
use stratus_rpc::wire::addresses::MapPublicAddresses;
use stratus_rpc::wire::ids::InstanceId;
use stratus_test_support::{Netns, eventually_blocking, fixtures};

use crate::public::{config, ip, set};

/// Whether a TCP connect from `from` to `address:port` succeeds.
fn connects(from: &Netns, address: &str, port: u16) -> bool {
    let target = format!("exec 3<>/dev/tcp/{address}/{port}");
    from.try_run("timeout", &["2", "bash", "-c", &target]).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outside_reaches_a_guest_on_its_public_address_and_sees_the_guest_come_from_it() {
    // router: the network host, its public interface a veth to the outside
    // (as in the all-in-one); guest: behind the router's bridge.
    let (router, guest, outside) = (Netns::new("prt"), Netns::new("pgu"), Netns::new("pout"));
    let state = tempfile::tempdir().expect("tempdir");
    let manager = NetworkManager::start(
        &config(None),
        state.path(),
        Arc::new(RealHost::in_netns(router.name())),
    )
    .await
    .expect("start");
    let id = InstanceId::new();
    let got = manager
        .allocate_fixed_ip(&fixtures::allocate_fixed_ip(id, "p", "02:16:3e:00:08:01"))
        .await
        .expect("allocate");
    let prefix = got.cidr.split_once('/').expect("a CIDR").1;
    router.run("ip", &["link", "add", "br100", "type", "bridge"]);
    router.run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/{prefix}", got.gateway),
            "dev",
            "br100",
        ],
    );
    router.run("ip", &["link", "set", "br100", "up"]);
    router.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    router.veth("gport", &guest, "eth0");
    router.run("ip", &["link", "set", "gport", "master", "br100"]);
    router.run("ip", &["link", "set", "gport", "up"]);
    guest.run("ip", &["link", "set", "eth0", "up"]);
    guest.run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/{prefix}", got.address),
            "dev",
            "eth0",
        ],
    );
    guest.run("ip", &["route", "add", "default", "via", &got.gateway]);
    router.veth("stratus-pub", &outside, "eth0");
    router.run("ip", &["link", "set", "stratus-pub", "up"]);
    outside.run("ip", &["link", "set", "eth0", "up"]);
    outside.run("ip", &["addr", "add", "172.24.4.1/24", "dev", "eth0"]);
    // The outside takes connections only from the guest's public address.
    outside.run(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "9090",
            "!",
            "-s",
            "172.24.4.10/32",
            "-j",
            "REJECT",
        ],
    );
    let _guest_listens = guest.listen_tcp(&got.address, 8080);
    let _outside_listens = outside.listen_tcp("172.24.4.1", 9090);

    assert!(
        !connects(&outside, "172.24.4.10", 8080),
        "reached the guest before any mapping"
    );
    manager
        .map_public_addresses(&set("172.24.4.10", id, 1))
        .await
        .expect("map");
    assert!(
        eventually_blocking(Duration::from_secs(5), || connects(
            &outside,
            "172.24.4.10",
            8080
        )),
        "the outside could not reach the guest on its public address"
    );
    assert!(
        connects(&guest, "172.24.4.1", 9090),
        "the guest's connection did not come from its public address"
    );

    manager
        .map_public_addresses(&MapPublicAddresses {
            set: Vec::new(),
            clear: vec![ip("172.24.4.10")],
            sequence: 2,
        })
        .await
        .expect("clear");
    assert!(
        !connects(&outside, "172.24.4.10", 8080),
        "a cleared address still leads to the guest"
    );
    manager.ipam().store().close().await;
}
