//! Anti-spoofing on the real kernel: a router namespace with a bridge, a
//! victim and an attacker namespace each behind a port of it. Each attack
//! is first shown to work with no filter (so the check can fail), then to
//! fail once the firewall pins the ports, while the victim keeps working.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use stratus_host::firewall::render::InstanceFilter;
use stratus_rpc::wire::firewall::{IngressRule, SecurityGroupUpdate};
use stratus_rpc::wire::ids::{InstanceId, SecurityGroupId};

use crate::firewall_traffic::firewall_in;
use stratus_test_support::Netns;

pub(crate) const VICTIM: &str = "10.0.0.3";
pub(crate) const ATTACKER: &str = "10.0.0.4";

pub(crate) struct Lan {
    pub(crate) router: Netns,
    pub(crate) victim: Netns,
    pub(crate) attacker: Netns,
}

fn plug(router: &Netns, port: &str, guest: &Netns) {
    router.veth(port, guest, "eth0");
    router.run("ip", &["link", "set", port, "master", "br100", "up"]);
    guest.run("ip", &["link", "set", "eth0", "up"]);
}

/// A router namespace with bridge br100 (10.0.0.1/24), the victim
/// (10.0.0.3) on port `vport` and the attacker (10.0.0.4) on `aport`.
pub(crate) fn lan() -> Lan {
    let lan = Lan {
        router: Netns::new("asr"),
        victim: Netns::new("asv"),
        attacker: Netns::new("asa"),
    };
    lan.router
        .run("ip", &["link", "add", "br100", "type", "bridge"]);
    lan.router
        .run("ip", &["addr", "add", "10.0.0.1/24", "dev", "br100"]);
    lan.router.run("ip", &["link", "set", "br100", "up"]);
    plug(&lan.router, "vport", &lan.victim);
    plug(&lan.router, "aport", &lan.attacker);
    lan.victim.run(
        "ip",
        &["addr", "add", &format!("{VICTIM}/24"), "dev", "eth0"],
    );
    lan.attacker.run(
        "ip",
        &["addr", "add", &format!("{ATTACKER}/24"), "dev", "eth0"],
    );
    lan
}

/// The sources of UDP datagrams `listener` got on `bind:port` while `send`
/// ran.
pub(crate) fn udp_sources(listener: &Netns, bind: &str, port: u16, send: impl FnOnce()) -> String {
    let script = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{bind}',{port}))\n\
         s.settimeout(2)\n\
         print('ready',flush=True)\n\
         while True:\n\
         \x20try:\n\
         \x20\x20d,a=s.recvfrom(2048)\n\
         \x20\x20print(a[0],flush=True)\n\
         \x20except socket.timeout:\n\
         \x20\x20break\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", listener.name(), "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listener starts");
    // Send only once the listener is bound (it says so): on a busy machine
    // starting python takes longer than any fixed wait.
    let mut stdout = BufReader::new(child.stdout.take().expect("listener stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("listener output");
    assert_eq!(first.trim(), "ready", "the listener did not start");
    send();
    let mut got = String::new();
    stdout.read_to_string(&mut got).expect("listener output");
    child.wait().expect("listener ends");
    got
}

/// Sends one datagram from `from` (an address of `ns`) to `to:port`.
pub(crate) fn send_udp(ns: &Netns, from: &str, from_port: u16, to: &str, port: u16) {
    let script = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\n\
         s.bind(('{from}',{from_port}))\n\
         [s.sendto(b'x',('{to}',{port})) for _ in range(3)]\n"
    );
    ns.run("python3", &["-c", &script]);
}

/// Whether a datagram from `ATTACKER` sent with V's address reaches the router.
fn spoofed_ip_arrives(lan: &Lan) -> bool {
    lan.attacker.run(
        "ip",
        &["addr", "add", &format!("{VICTIM}/32"), "dev", "eth0"],
    );
    let got = udp_sources(&lan.router, "10.0.0.1", 9999, || {
        send_udp(&lan.attacker, VICTIM, 0, "10.0.0.1", 9999);
    });
    lan.attacker.run(
        "ip",
        &["addr", "del", &format!("{VICTIM}/32"), "dev", "eth0"],
    );
    got.contains(VICTIM)
}

/// Whether the attacker's own datagrams reach the router (the control).
fn own_ip_arrives(lan: &Lan) -> bool {
    udp_sources(&lan.router, "10.0.0.1", 9999, || {
        send_udp(&lan.attacker, ATTACKER, 0, "10.0.0.1", 9999);
    })
    .contains(ATTACKER)
}

/// Whether anything arrives once the attacker has changed its MAC.
fn spoofed_mac_arrives(lan: &Lan) -> bool {
    let real = lan.attacker.mac("eth0");
    lan.attacker.run(
        "ip",
        &["link", "set", "eth0", "address", "02:16:3e:66:66:66"],
    );
    let got = udp_sources(&lan.router, "10.0.0.1", 9999, || {
        send_udp(&lan.attacker, ATTACKER, 0, "10.0.0.1", 9999);
    });
    lan.attacker
        .run("ip", &["link", "set", "eth0", "address", &real]);
    got.contains(ATTACKER)
}

/// Whether gratuitous ARP claiming V's address moves the router's entry for
/// V to the attacker's MAC.
fn arp_poisons_the_router(lan: &Lan) -> bool {
    lan.router.run("ip", &["neigh", "flush", "dev", "br100"]);
    lan.router
        .try_run("busybox", &["ping", "-c", "1", "-W", "1", VICTIM]);
    // The kernel ignores updates within locktime (1 s) of the last one.
    std::thread::sleep(Duration::from_millis(1200));
    // busybox arping binds the address it claims.
    lan.attacker.run(
        "ip",
        &["addr", "add", &format!("{VICTIM}/32"), "dev", "eth0"],
    );
    let _ = lan.attacker.try_run(
        "busybox",
        &[
            "arping", "-U", "-c", "2", "-w", "1", "-I", "eth0", "-s", VICTIM, VICTIM,
        ],
    );
    let _ = lan.attacker.try_run(
        "busybox",
        &[
            "arping", "-A", "-c", "2", "-w", "1", "-I", "eth0", "-s", VICTIM, VICTIM,
        ],
    );
    lan.attacker.run(
        "ip",
        &["addr", "del", &format!("{VICTIM}/32"), "dev", "eth0"],
    );
    let neigh = lan.router.run("ip", &["neigh", "show", VICTIM]);
    neigh.contains(&lan.attacker.mac("eth0"))
}

/// Whether a DHCP server's reply from the attacker reaches the victim.
fn dhcp_offer_arrives(lan: &Lan) -> bool {
    udp_sources(&lan.victim, "0.0.0.0", 68, || {
        send_udp(&lan.attacker, ATTACKER, 67, "255.255.255.255", 68);
    })
    .contains(ATTACKER)
}

fn filter(ns: &Netns, address: &str, port: &str, group: &SecurityGroupId) -> InstanceFilter {
    InstanceFilter {
        address: address.parse().expect("ip"),
        mac: ns.mac("eth0").parse().expect("mac"),
        device: port.into(),
        dhcp_server: "10.0.0.2".parse().expect("ip"),
        groups: vec![group.clone()],
        source_dest_check: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_port_cannot_spoof_ip_mac_arp_or_dhcp() {
    let lan = lan();
    assert!(own_ip_arrives(&lan), "the LAN does not work at all");
    assert!(
        spoofed_ip_arrives(&lan),
        "IP spoofing failed even unfiltered"
    );
    assert!(
        spoofed_mac_arrives(&lan),
        "MAC spoofing failed even unfiltered"
    );
    assert!(
        arp_poisons_the_router(&lan),
        "ARP poisoning failed even unfiltered"
    );
    assert!(
        dhcp_offer_arrives(&lan),
        "a rogue offer failed even unfiltered"
    );

    let locks = tempfile::tempdir().expect("tempdir");
    let firewall = firewall_in(&lan.router, locks.path());
    let group: SecurityGroupId = "sg-0000000000000abcd".parse().expect("group");
    firewall
        .update_group(SecurityGroupUpdate {
            group: group.clone(),
            rules: vec![],
            egress: vec![IngressRule::allow_all()],
            members: vec![],
        })
        .await
        .expect("group");
    for (ns, address, port) in [
        (&lan.victim, VICTIM, "vport"),
        (&lan.attacker, ATTACKER, "aport"),
    ] {
        firewall
            .add_instance(InstanceId::new(), filter(ns, address, port, &group))
            .await
            .expect("pin the port");
    }

    assert!(
        !spoofed_ip_arrives(&lan),
        "a datagram from V's address got through"
    );
    assert!(
        !spoofed_mac_arrives(&lan),
        "a frame from a foreign MAC got through"
    );
    assert!(
        !arp_poisons_the_router(&lan),
        "the router's entry for V points at the attacker"
    );
    assert!(
        !dhcp_offer_arrives(&lan),
        "the attacker's DHCP reply reached the victim"
    );
    assert!(
        own_ip_arrives(&lan),
        "the attacker's honest traffic stopped too"
    );
    let victim = udp_sources(&lan.router, "10.0.0.1", 9999, || {
        send_udp(&lan.victim, VICTIM, 0, "10.0.0.1", 9999);
    });
    assert!(
        victim.contains(VICTIM),
        "the victim's own traffic stopped: {victim:?}"
    );
    let (ok, out) = lan
        .router
        .try_run("busybox", &["ping", "-c", "1", "-W", "2", VICTIM]);
    assert!(
        ok,
        "the router cannot reach the victim (ARP through the filter): {out}"
    );
}

/// Whether the attacker's TCP connect to the victim's port 8080 succeeds.
fn attacker_connects(lan: &Lan) -> bool {
    let target = format!("exec 3<>/dev/tcp/{VICTIM}/8080");
    lan.attacker
        .try_run("timeout", &["2", "bash", "-c", &target])
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_between_two_guests_needs_the_receivers_ingress_and_the_senders_egress() {
    let lan = lan();
    let _server = lan.victim.listen_tcp(VICTIM, 8080);
    let mut up = false;
    for _ in 0..30 {
        up = attacker_connects(&lan);
        if up {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "no connection even before any firewall");

    let locks = tempfile::tempdir().expect("tempdir");
    let firewall = firewall_in(&lan.router, locks.path());
    let (web, client): (SecurityGroupId, SecurityGroupId) = (
        "sg-000000000000000aa".parse().expect("group"),
        "sg-000000000000000bb".parse().expect("group"),
    );
    let rule = |spec: &str| {
        IngressRule::try_from(stratus_rpc::wire::firewall::RuleSpec {
            protocol: "tcp".into(),
            from_port: Some(8080),
            to_port: Some(8080),
            cidr: None,
            source_group: Some(spec.into()),
        })
        .expect("rule")
    };
    let groups = |web_ingress: Vec<IngressRule>, client_egress: Vec<IngressRule>| {
        [
            SecurityGroupUpdate {
                group: web.clone(),
                rules: web_ingress,
                egress: vec![IngressRule::allow_all()],
                members: vec![VICTIM.parse().expect("ip")],
            },
            SecurityGroupUpdate {
                group: client.clone(),
                rules: vec![],
                egress: client_egress,
                members: vec![ATTACKER.parse().expect("ip")],
            },
        ]
    };
    for update in groups(vec![], vec![IngressRule::allow_all()]) {
        firewall.update_group(update).await.expect("group");
    }
    for (guest, address, port, group) in [
        (&lan.victim, VICTIM, "vport", &web),
        (&lan.attacker, ATTACKER, "aport", &client),
    ] {
        firewall
            .add_instance(InstanceId::new(), filter(guest, address, port, group))
            .await
            .expect(port);
    }
    assert!(!attacker_connects(&lan), "in through a group with no rules");

    // The web group admits the client group: allowed on both sides.
    for update in groups(vec![rule(client.as_str())], vec![IngressRule::allow_all()]) {
        firewall.update_group(update).await.expect("group");
    }
    assert!(
        attacker_connects(&lan),
        "ingress from the client group did not admit it"
    );

    // The sender's egress no longer allows it: refused although ingress would.
    for update in groups(vec![rule(client.as_str())], vec![]) {
        firewall.update_group(update).await.expect("group");
    }
    assert!(
        !attacker_connects(&lan),
        "out although the sender's egress allows nothing"
    );

    // Egress naming the web group by id lets it out again.
    for update in groups(vec![rule(client.as_str())], vec![rule(web.as_str())]) {
        firewall.update_group(update).await.expect("group");
    }
    assert!(
        attacker_connects(&lan),
        "egress to the web group did not let it out"
    );
}
