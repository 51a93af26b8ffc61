//! A port with its source/destination check off (a NAT instance), on the
//! real kernel: the LAN of `antispoof_traffic` plus an outside network
//! behind the router, whose route to the outside addresses' range points at
//! the attacker as a route table points at a NAT instance. The port sends
//! from addresses outside the cloud, bridged and routed, never from the
//! cloud's; its egress rules judge what it sends whatever the source, its
//! ingress rules what is bridged to it whatever the destination. Each
//! attempt is first shown to work with no filter, so the check can fail.

use stratus_host::firewall::render::InstanceFilter;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec, SecurityGroupUpdate};
use stratus_rpc::wire::ids::{InstanceId, SecurityGroupId};
use stratus_test_support::Netns;

use crate::antispoof_traffic::{ATTACKER, Lan, VICTIM, lan, send_udp, udp_sources};
use crate::firewall_traffic::firewall_of;

/// Outside the cloud: the address the attacker forwards from.
const FOREIGN: &str = "198.51.100.7";
/// Outside the cloud: an address the victim reaches through the attacker.
const BEYOND: &str = "198.51.100.9";
/// A host on the outside network.
const OUTSIDE: &str = "192.0.2.2";
/// The cloud's addresses the attacker must never send from: a neighbour's,
/// one of the fixed range off this LAN, the metadata address.
const CLOUD_SOURCES: [&str; 3] = [VICTIM, "10.0.9.9", "169.254.169.254"];

/// The outside network, and routes and sysctls of a cloud with a NAT
/// instance: guests default through the router; the attacker's sources
/// are on its interface, and ARP only ever announces its own address.
fn with_outside(lan: &Lan) -> Netns {
    let outside = Netns::new("aso");
    lan.router.veth("out0", &outside, "eth0");
    for cmd in [
        "ip addr add 192.0.2.1/24 dev out0",
        "ip link set out0 up",
        "ip route add 198.51.100.0/24 via 10.0.0.4",
        "sysctl -qw net.ipv4.ip_forward=1",
        // Sources off any route are what this test sends on purpose.
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.br100.rp_filter=0",
    ] {
        let argv: Vec<&str> = cmd.split(' ').collect();
        lan.router.run(argv[0], &argv[1..]);
    }
    outside.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    outside.run("ip", &["link", "set", "eth0", "up"]);
    outside.run("ip", &["route", "add", "default", "via", "192.0.2.1"]);
    outside.run("sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"]);
    lan.victim
        .run("ip", &["route", "add", "default", "via", "10.0.0.1"]);
    lan.victim
        .run("ip", &["route", "add", BEYOND, "via", ATTACKER]);
    lan.attacker
        .run("ip", &["route", "add", "default", "via", "10.0.0.1"]);
    lan.attacker.run(
        "sysctl",
        &[
            "-qw",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.eth0.arp_announce=2",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.eth0.rp_filter=0",
        ],
    );
    for address in [FOREIGN, BEYOND] {
        lan.attacker.run(
            "ip",
            &["addr", "add", &format!("{address}/32"), "dev", "eth0"],
        );
    }
    outside
}

/// Whether a datagram the attacker sends from `source` to `to` arrives
/// (`listener` binds `to`).
fn arrives(lan: &Lan, listener: &Netns, source: &str, to: &str) -> bool {
    udp_sources(listener, to, 9999, || {
        send_udp(&lan.attacker, source, 0, to, 9999);
    })
    .contains(source)
}

/// Whether a datagram the attacker sends to the router from the cloud's
/// `source` arrives: the address is the attacker's only meanwhile (held for
/// good, the victim's would keep its packets to the victim at home).
fn cloud_source_arrives(lan: &Lan, source: &str) -> bool {
    let held = format!("{source}/32");
    lan.attacker
        .run("ip", &["addr", "add", &held, "dev", "eth0"]);
    let arrived = arrives(lan, &lan.router, source, "10.0.0.1");
    lan.attacker
        .run("ip", &["addr", "del", &held, "dev", "eth0"]);
    arrived
}

/// Whether the victim's datagram to [`BEYOND`] (routed by the victim
/// through the attacker) reaches the attacker.
fn bridged_to_the_attacker(lan: &Lan) -> bool {
    udp_sources(&lan.attacker, BEYOND, 9999, || {
        send_udp(&lan.victim, VICTIM, 0, BEYOND, 9999);
    })
    .contains(VICTIM)
}

fn udp_from(cidr: &str) -> IngressRule {
    IngressRule::try_from(RuleSpec {
        protocol: "udp".into(),
        from_port: None,
        to_port: None,
        cidr: Some(cidr.into()),
        source_group: None,
    })
    .expect("rule")
}

fn port(ns: &Netns, address: &str, device: &str, group: &SecurityGroupId) -> InstanceFilter {
    InstanceFilter {
        address: address.parse().expect("ip"),
        mac: ns.mac("eth0").parse().expect("mac"),
        device: device.into(),
        dhcp_server: "10.0.0.2".parse().expect("ip"),
        groups: vec![group.clone()],
        source_dest_check: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchecked_port_sends_from_outside_the_cloud_only_and_its_groups_still_judge_it() {
    let lan = lan();
    let outside = with_outside(&lan);
    // Unfiltered, everything below goes through.
    assert!(arrives(&lan, &lan.router, FOREIGN, "10.0.0.1"));
    for source in CLOUD_SOURCES {
        assert!(
            cloud_source_arrives(&lan, source),
            "{source} failed even unfiltered"
        );
    }
    assert!(arrives(&lan, &lan.victim, FOREIGN, VICTIM));
    assert!(arrives(&lan, &outside, FOREIGN, OUTSIDE));
    assert!(bridged_to_the_attacker(&lan));

    let locks = tempfile::tempdir().expect("tempdir");
    let cloud = vec!["10.0.0.0/16".parse().expect("cidr")];
    let firewall = firewall_of(&lan.router, locks.path(), cloud);
    let (open, nat): (SecurityGroupId, SecurityGroupId) = (
        "sg-000000000000000aa".parse().expect("group"),
        "sg-000000000000000bb".parse().expect("group"),
    );
    let nat_group = |rules: Vec<IngressRule>, egress: Vec<IngressRule>| SecurityGroupUpdate {
        group: nat.clone(),
        rules,
        egress,
        members: vec![ATTACKER.parse().expect("ip")],
    };
    firewall
        .update_group(SecurityGroupUpdate {
            group: open.clone(),
            rules: vec![udp_from("0.0.0.0/0")],
            egress: vec![IngressRule::allow_all()],
            members: vec![VICTIM.parse().expect("ip")],
        })
        .await
        .expect("group");
    firewall
        .update_group(nat_group(vec![], vec![IngressRule::allow_all()]))
        .await
        .expect("group");
    let attacker = InstanceId::new();
    firewall
        .add_instance(InstanceId::new(), port(&lan.victim, VICTIM, "vport", &open))
        .await
        .expect("victim");
    firewall
        .add_instance(attacker, port(&lan.attacker, ATTACKER, "aport", &nat))
        .await
        .expect("attacker");
    assert!(
        !arrives(&lan, &lan.router, FOREIGN, "10.0.0.1"),
        "checked, an outside source got through"
    );

    assert!(
        firewall
            .set_source_dest_check(attacker, false)
            .await
            .expect("unchecked")
    );
    assert!(
        arrives(&lan, &lan.router, FOREIGN, "10.0.0.1"),
        "unchecked, an outside source is still dropped"
    );
    for source in CLOUD_SOURCES {
        assert!(
            !cloud_source_arrives(&lan, source),
            "unchecked, the cloud's {source} got through"
        );
    }
    assert!(arrives(&lan, &lan.victim, FOREIGN, VICTIM), "bridged");
    assert!(arrives(&lan, &outside, FOREIGN, OUTSIDE), "routed");
    assert!(
        !bridged_to_the_attacker(&lan),
        "in to the attacker although its group admits nothing"
    );

    // Its egress rules judge what it forwards, bridged or routed.
    firewall
        .update_group(nat_group(vec![udp_from("10.0.0.3/32")], vec![]))
        .await
        .expect("group");
    assert!(
        !arrives(&lan, &lan.victim, FOREIGN, VICTIM),
        "bridged out although its egress allows nothing"
    );
    assert!(
        !arrives(&lan, &outside, FOREIGN, OUTSIDE),
        "routed out although its egress allows nothing"
    );
    // Its ingress rules judge what is bridged to it, whatever the address.
    assert!(
        bridged_to_the_attacker(&lan),
        "its group admits the victim, yet nothing came in"
    );

    // Checked again: outside sources are dropped at its port once more.
    firewall
        .update_group(nat_group(vec![], vec![IngressRule::allow_all()]))
        .await
        .expect("group");
    assert!(
        firewall
            .set_source_dest_check(attacker, true)
            .await
            .expect("checked")
    );
    assert!(
        !arrives(&lan, &outside, FOREIGN, OUTSIDE),
        "checked again, an outside source got out"
    );
    assert!(
        arrives(&lan, &lan.router, ATTACKER, "10.0.0.1"),
        "checked again, its own address is dropped"
    );
    assert!(
        !firewall
            .set_source_dest_check(InstanceId::new(), false)
            .await
            .expect("no such instance"),
        "an instance with no filters here is not found"
    );
}
