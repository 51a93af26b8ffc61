//! Bridges and VLAN interfaces, made for real inside a test namespace.

use std::sync::Arc;

use stratus_host::RealHost;
use stratus_host::bridge::Bridges;

use stratus_test_support::Netns;

/// Whether this kernel can make 802.1Q interfaces (the CI machines' cannot:
/// CONFIG_VLAN_8021Q is unset and no modules can be loaded).
fn kernel_has_vlan() -> bool {
    let config = std::process::Command::new("sh")
        .args(["-c", "zcat /proc/config.gz 2>/dev/null"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    config.contains("CONFIG_VLAN_8021Q=y")
        || config.contains("CONFIG_VLAN_8021Q=m")
        || config.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges_appear_once_under_concurrent_and_repeated_calls() {
    let ns = Netns::new("br");
    let bridges = Arc::new(Bridges::new(Arc::new(RealHost::in_netns(ns.name()))));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let bridges = bridges.clone();
        calls.spawn(async move { bridges.ensure_bridge("br100").await });
    }
    while let Some(done) = calls.join_next().await {
        done.expect("task").expect("ensure_bridge");
    }
    bridges.ensure_bridge("br100").await.expect("again");
    let links = ns.run("ip", &["-o", "-d", "link", "show"]);
    assert_eq!(links.matches("br100:").count(), 1, "{links}");
    let bridge = ns.run("ip", &["-d", "link", "show", "br100"]);
    assert!(
        bridge.contains("bridge") && bridge.contains("UP"),
        "{bridge}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlan_bridge_appears_where_the_kernel_has_vlans_and_fails_clearly_where_not() {
    let ns = Netns::new("vl");
    ns.run(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ],
    );
    let bridges = Arc::new(Bridges::new(Arc::new(RealHost::in_netns(ns.name()))));
    let result = bridges.ensure_vlan_bridge(100, "eth0", "br100").await;
    if kernel_has_vlan() {
        result.expect("ensure_vlan_bridge");
        bridges
            .ensure_vlan_bridge(100, "eth0", "br100")
            .await
            .expect("again");
        let vlan = ns.run("ip", &["-d", "link", "show", "vlan100"]);
        assert!(vlan.contains("vlan protocol 802.1Q id 100"), "{vlan}");
        assert!(vlan.contains("master br100"), "{vlan}");
    } else {
        let err = result.expect_err("this kernel has no 802.1Q support");
        let text = err.to_string();
        assert!(
            text.contains("vlan100") && text.contains("type vlan"),
            "unclear error: {text}"
        );
        eprintln!("note: kernel without CONFIG_VLAN_8021Q; checked the error path only");
    }
}

#[tokio::test]
async fn vlan_bridge_commands_are_argument_vectors_in_order() {
    let fake = Arc::new(stratus_host::FakeHost::new());
    // Neither link exists yet.
    fake.answer("ip", Err("Device \"vlan100\" does not exist."));
    let bridges = Bridges::new(fake.clone());
    fake.answer("ip", Ok(""));
    bridges
        .ensure_vlan_bridge(100, "eth0", "br100")
        .await
        .expect("fake");
    let calls = fake.command_lines();
    assert_eq!(
        calls,
        [
            "ip link show dev vlan100",
            "ip link add link eth0 name vlan100 type vlan id 100",
            "ip link set dev vlan100 up",
            "ip link show dev br100",
            "ip link set dev br100 up",
            "ip link set dev vlan100 master br100",
        ]
    );
}

#[tokio::test]
async fn bad_names_never_reach_ip() {
    let fake = Arc::new(stratus_host::FakeHost::new());
    let bridges = Bridges::new(fake.clone());
    assert!(bridges.ensure_bridge("br0; reboot").await.is_err());
    assert!(
        bridges
            .ensure_bridge("a-name-longer-than-15")
            .await
            .is_err()
    );
    assert!(
        bridges
            .ensure_vlan_bridge(5000, "eth0", "br1")
            .await
            .is_err()
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}
