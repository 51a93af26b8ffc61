//! dnsmasq run by the network controller hands a guest its fixed IP, by MAC.

use std::sync::Arc;

use stratus_host::RealHost;
use stratus_network::NetworkManager;
use stratus_network::config::{ManagerKind, NetworkConfig};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::ReleaseFixedIp;

use stratus_test_support::{Netns, fixtures, sh};

const MAC: &str = "02:16:3e:12:34:56";

/// Asks for a lease from the guest namespace; the address, if one came.
fn udhcpc(guest: &Netns) -> Option<String> {
    let (ok, out) = guest.try_run(
        "busybox",
        &[
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "4",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ],
    );
    if !ok {
        return None;
    }
    let marker = "lease of ";
    let at = out.find(marker)? + marker.len();
    out[at..].split_whitespace().next().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_gives_the_allocated_address_to_the_right_mac_only() {
    let (router, guest) = (Netns::new("dh"), Netns::new("dg"));
    let state = tempfile::tempdir().expect("tempdir");
    let config = NetworkConfig {
        manager: ManagerKind::Flat,
        fixed_range: "10.20.0.0/24".into(),
        network_size: 64,
        ..NetworkConfig::default()
    };
    let host = Arc::new(RealHost::in_netns(router.name()));
    let manager = NetworkManager::start(&config, state.path(), host)
        .await
        .expect("start");
    let instance_id = InstanceId::new();
    let fixed = manager
        .allocate_fixed_ip(&fixtures::allocate_fixed_ip(instance_id, "p1", MAC))
        .await
        .expect("allocate");
    assert_eq!(
        (fixed.bridge.as_str(), fixed.gateway.as_str()),
        ("br100", "10.20.0.1")
    );

    // The guest's NIC, with the instance's MAC, on the controller's bridge.
    let tmp = format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    router.veth(&tmp, &guest, "eth0");
    router.run("ip", &["link", "set", &tmp, "master", "br100", "up"]);
    guest.run("ip", &["link", "set", "eth0", "address", MAC, "up"]);

    assert_eq!(udhcpc(&guest).as_deref(), Some(fixed.address.as_str()));

    // Another MAC gets nothing: only static entries are served.
    guest.run(
        "ip",
        &["link", "set", "eth0", "address", "02:16:3e:00:00:99"],
    );
    assert_eq!(udhcpc(&guest), None);
    guest.run("ip", &["link", "set", "eth0", "address", MAC]);

    // Released: the host line goes (dnsmasq reloads) and no lease is offered.
    manager
        .release_fixed_ip(&ReleaseFixedIp { instance_id })
        .await
        .expect("release");
    let hosts =
        std::fs::read_to_string(state.path().join("networks/br100/0/hosts")).expect("hosts file");
    assert!(!hosts.contains(MAC), "{hosts}");
    assert_eq!(udhcpc(&guest), None);

    // A dnsmasq that died is started again on the next change.
    let dir = state.path().join("networks/br100/0");
    let pid = stratus_network::dhcp::running_pid(&dir)
        .await
        .expect("dnsmasq runs");
    sh("kill", &["-KILL", &pid.to_string()]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(stratus_network::dhcp::running_pid(&dir).await.is_none());
    let again = manager
        .allocate_fixed_ip(&fixtures::allocate_fixed_ip(instance_id, "p1", MAC))
        .await
        .expect("allocate again");
    assert!(
        stratus_network::dhcp::running_pid(&dir).await.is_some(),
        "dnsmasq not restarted"
    );
    assert_eq!(udhcpc(&guest).as_deref(), Some(again.address.as_str()));
    manager.stop_dhcp().await;
}

/// A controller killed after writing the hosts file but before signalling
/// dnsmasq left a file dnsmasq never read; the next controller's resync
/// makes dnsmasq load it even though the file already holds the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_reloads_entries_dnsmasq_never_read() {
    let (router, guest) = (Netns::new("dr"), Netns::new("dq"));
    let state = tempfile::tempdir().expect("tempdir");
    let config = NetworkConfig {
        manager: ManagerKind::Flat,
        fixed_range: "10.21.0.0/24".into(),
        network_size: 64,
        ..NetworkConfig::default()
    };
    let host = Arc::new(RealHost::in_netns(router.name()));
    let first = NetworkManager::start(&config, state.path(), host.clone())
        .await
        .expect("start");
    let other = "02:16:3e:00:00:42";
    first
        .allocate_fixed_ip(&fixtures::allocate_fixed_ip(InstanceId::new(), "p1", other))
        .await
        .expect("allocate another");
    let fixed = first
        .allocate_fixed_ip(&fixtures::allocate_fixed_ip(InstanceId::new(), "p1", MAC))
        .await
        .expect("allocate");
    let tmp = format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    router.veth(&tmp, &guest, "eth0");
    router.run("ip", &["link", "set", &tmp, "master", "br100", "up"]);
    guest.run("ip", &["link", "set", "eth0", "address", MAC, "up"]);

    // The state the kill leaves: dnsmasq loaded the entries without this
    // MAC, and the file holds them with it.
    let dir = state.path().join("networks/br100/0");
    let hosts_file = dir.join("hosts");
    let written = std::fs::read_to_string(&hosts_file).expect("hosts file");
    assert!(written.contains(MAC), "{written}");
    let before: String = written
        .lines()
        .filter(|l| !l.contains(MAC))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&hosts_file, before).expect("older hosts file");
    let pid = stratus_network::dhcp::running_pid(&dir)
        .await
        .expect("dnsmasq runs");
    sh("kill", &["-HUP", &pid.to_string()]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    std::fs::write(&hosts_file, &written).expect("hosts file as the killed controller left it");
    assert_eq!(udhcpc(&guest), None, "dnsmasq should not know the MAC yet");
    drop(first);

    let second = NetworkManager::start(&config, state.path(), host)
        .await
        .expect("restart");
    second.resync_dhcp().await.expect("resync");
    assert_eq!(
        stratus_network::dhcp::running_pid(&dir).await,
        Some(pid),
        "the same dnsmasq, reloaded rather than replaced"
    );
    assert_eq!(udhcpc(&guest).as_deref(), Some(fixed.address.as_str()));
    second.stop_dhcp().await;
}
