//! The firewall on real iptables, in namespaces: a router namespace with the
//! instance's bridge, a guest namespace behind it, and a client namespace
//! whose TCP connects cross the router's FORWARD chain.

use std::sync::Arc;
use std::time::Duration;

use stratus_host::firewall::Firewall;
use stratus_host::firewall::render::InstanceFilter;
use stratus_host::iptables::Iptables;
use stratus_host::nft::Nft;
use stratus_host::{HostCommands, RealHost};
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec, SecurityGroupUpdate};
use stratus_rpc::wire::ids::{InstanceId, SecurityGroupId};

use stratus_test_support::netns::Served;
use stratus_test_support::{Netns, eventually_blocking};

struct Topology {
    // Dropped first: stopped before its namespace goes.
    _listener: Served,
    router: Netns,
    guest: Netns,
    client: Netns,
}

fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    a.veth(a_name, b, b_name);
    a.run("ip", &["link", "set", a_name, "up"]);
    b.run("ip", &["link", "set", b_name, "up"]);
}

fn topology() -> Topology {
    let (router, guest, client) = (Netns::new("rt"), Netns::new("gu"), Netns::new("cl"));
    router.run("ip", &["link", "add", "br100", "type", "bridge"]);
    router.run("ip", &["addr", "add", "10.0.0.1/24", "dev", "br100"]);
    router.run("ip", &["link", "set", "br100", "up"]);
    router.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    veth(&router, "gport", &guest, "eth0");
    router.run("ip", &["link", "set", "gport", "master", "br100"]);
    guest.run("ip", &["addr", "add", "10.0.0.3/24", "dev", "eth0"]);
    guest.run("ip", &["route", "add", "default", "via", "10.0.0.1"]);
    veth(&router, "cport", &client, "eth0");
    router.run("ip", &["addr", "add", "10.1.0.1/24", "dev", "cport"]);
    client.run("ip", &["addr", "add", "10.1.0.2/24", "dev", "eth0"]);
    client.run("ip", &["route", "add", "default", "via", "10.1.0.1"]);
    let listener = guest.listen_tcp("10.0.0.3", 8080);
    let topology = Topology {
        router,
        guest,
        client,
        _listener: listener,
    };
    assert!(
        wait_for(|| connects(&topology)),
        "no connection even before any firewall"
    );
    topology
}

/// Whether a TCP connect from the client to the guest's listener succeeds.
fn connects(t: &Topology) -> bool {
    t.client
        .try_run(
            "timeout",
            &["2", "bash", "-c", "exec 3<>/dev/tcp/10.0.0.3/8080"],
        )
        .0
}

/// Polls `cond` for up to 5 s (a connect attempt itself may take 2 s).
fn wait_for(cond: impl Fn() -> bool) -> bool {
    eventually_blocking(Duration::from_secs(5), cond)
}

fn save(ns: &Netns) -> String {
    ns.run("iptables-save", &["-t", "filter"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The guest namespace's port, as the firewall knows it.
fn guest_filter(t: &Topology) -> InstanceFilter {
    InstanceFilter {
        address: "10.0.0.3".parse().expect("ip"),
        mac: t.guest.mac("eth0").parse().expect("mac"),
        device: "gport".into(),
        dhcp_server: "10.0.0.2".parse().expect("ip"),
        groups: vec![group()],
        source_dest_check: true,
    }
}

/// A firewall applying in `ns`, with its lock files in `locks`.
pub(crate) fn firewall_in(ns: &Netns, locks: &std::path::Path) -> Arc<Firewall> {
    firewall_of(ns, locks, Vec::new())
}

/// As [`firewall_in`], for a cloud of its own ranges `cloud`.
pub(crate) fn firewall_of(
    ns: &Netns,
    locks: &std::path::Path,
    cloud: Vec<ipnet::Ipv4Net>,
) -> Arc<Firewall> {
    let host: Arc<dyn HostCommands> = Arc::new(RealHost::in_netns(ns.name()));
    Firewall::new(
        Iptables::new(host.clone(), locks.to_owned()),
        Some(Nft::new(host)),
        None,
        cloud,
    )
}

fn group() -> SecurityGroupId {
    "sg-00000000000000aaa".parse().expect("group")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_is_dropped_until_an_ingress_rule_allows_it() {
    let t = topology();
    // Another program's rule, which stratus must leave alone.
    t.router.run(
        "iptables",
        &["-A", "FORWARD", "-s", "192.0.2.1/32", "-j", "DROP"],
    );
    let locks = tempfile::tempdir().expect("tempdir");
    let firewall = firewall_in(&t.router, locks.path());
    let instance = InstanceId::new();
    let filter = guest_filter(&t);
    firewall
        .add_instance(instance, filter.clone())
        .await
        .expect("apply");
    assert!(!connects(&t), "connected through a group with no rules");

    let allow = IngressRule::try_from(RuleSpec {
        protocol: "tcp".into(),
        from_port: Some(8080),
        to_port: Some(8080),
        cidr: Some("10.1.0.0/24".into()),
        source_group: None,
    })
    .expect("rule");
    let update = SecurityGroupUpdate {
        group: group(),
        rules: vec![allow],
        egress: vec![IngressRule::allow_all()],
        members: vec![],
    };
    firewall.update_group(update).await.expect("update group");
    assert!(
        wait_for(|| connects(&t)),
        "the ingress rule did not let the connect through"
    );

    // Applying the same state again changes nothing.
    let before = save(&t.router);
    firewall
        .add_instance(instance, filter)
        .await
        .expect("re-apply");
    assert_eq!(save(&t.router), before);
    assert_eq!(before.matches("-j stratus-local").count(), 1, "{before}");

    firewall.remove_instance(instance).await.expect("remove");
    let after = save(&t.router);
    assert!(!after.contains("stratus"), "left behind:\n{after}");
    assert!(
        after.contains("-A FORWARD -s 192.0.2.1/32 -j DROP"),
        "touched another program's rule:\n{after}"
    );
    let _ = t.guest.name();
}

/// Whether a TCP connect from the guest to a listener on the client's
/// `port` succeeds.
fn guest_reaches(t: &Topology, port: u16) -> bool {
    let target = format!("exec 3<>/dev/tcp/10.1.0.2/{port}");
    t.guest.try_run("timeout", &["2", "bash", "-c", &target]).0
}

fn tcp_rule(port: i32, cidr: &str) -> IngressRule {
    IngressRule::try_from(RuleSpec {
        protocol: "tcp".into(),
        from_port: Some(port),
        to_port: Some(port),
        cidr: Some(cidr.into()),
        source_group: None,
    })
    .expect("rule")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_rules_decide_where_a_guest_may_connect() {
    let t = topology();
    let _listeners = [8081, 8082].map(|port| t.client.listen_tcp("10.1.0.2", port));
    assert!(wait_for(
        || guest_reaches(&t, 8081) && guest_reaches(&t, 8082)
    ));
    let locks = tempfile::tempdir().expect("tempdir");
    let firewall = firewall_in(&t.router, locks.path());
    let update = |egress: Vec<IngressRule>| SecurityGroupUpdate {
        group: group(),
        rules: vec![tcp_rule(8080, "10.1.0.0/24")],
        egress,
        members: vec![],
    };
    firewall
        .update_group(update(vec![IngressRule::allow_all()]))
        .await
        .expect("group");
    let filter = guest_filter(&t);
    firewall
        .add_instance(InstanceId::new(), filter)
        .await
        .expect("apply");
    assert!(
        guest_reaches(&t, 8081),
        "the default egress rule let nothing out"
    );

    firewall.update_group(update(vec![])).await.expect("revoke");
    assert!(!guest_reaches(&t, 8081), "out with no egress rule");
    assert!(
        connects(&t),
        "the reply to an admitted inbound connection was held by egress"
    );

    firewall
        .update_group(update(vec![tcp_rule(8082, "10.1.0.0/24")]))
        .await
        .expect("one port");
    assert!(
        guest_reaches(&t, 8082),
        "the egress rule did not let 8082 out"
    );
    assert!(
        !guest_reaches(&t, 8081),
        "8081 got out under a rule for 8082"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_instance_leaves_the_others_chains() {
    let ns = Netns::new("fw");
    let locks = tempfile::tempdir().expect("tempdir");
    let firewall = firewall_in(&ns, locks.path());
    let (a, b) = (InstanceId::new(), InstanceId::new());
    for (id, ip, port) in [(a, "10.0.0.3", "porta"), (b, "10.0.0.4", "portb")] {
        let filter = InstanceFilter {
            address: ip.parse().expect("ip"),
            mac: "02:16:3e:00:00:01".parse().expect("mac"),
            device: port.into(),
            dhcp_server: "10.0.0.2".parse().expect("ip"),
            groups: vec![group()],
            source_dest_check: true,
        };
        firewall.add_instance(id, filter).await.expect("apply");
    }
    firewall.remove_instance(a).await.expect("remove a");
    let saved = save(&ns);
    let chain = |id: &InstanceId| stratus_host::firewall::render::instance_chain(id);
    assert!(!saved.contains(&chain(&a)), "{saved}");
    assert!(!saved.contains("10.0.0.3"), "{saved}");
    assert!(saved.contains(&chain(&b)), "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_reach_the_metadata_service_through_the_dnat() {
    let t = topology();
    // The "api" listens on the router's bridge address, port 8775.
    let api = t.router.listen_tcp("10.0.0.1", 8775);
    let metadata = |ns: &Netns| {
        ns.try_run(
            "timeout",
            &["2", "bash", "-c", "exec 3<>/dev/tcp/169.254.169.254/80"],
        )
        .0
    };
    assert!(
        !metadata(&t.guest),
        "169.254.169.254 answered before the DNAT"
    );
    let locks = tempfile::tempdir().expect("tempdir");
    let iptables = Iptables::new(
        Arc::new(RealHost::in_netns(t.router.name())),
        locks.path().to_owned(),
    );
    let target = "10.0.0.1".parse().expect("ip");
    stratus_host::firewall::metadata::ensure_dnat(&iptables, target, 8775)
        .await
        .expect("dnat");
    stratus_host::firewall::metadata::ensure_dnat(&iptables, target, 8775)
        .await
        .expect("again");
    assert!(
        wait_for(|| metadata(&t.guest)),
        "the guest could not reach the metadata service"
    );
    let nat = t.router.run("iptables-save", &["-t", "nat"]);
    assert_eq!(
        nat.matches("-A PREROUTING -j stratus-metadata").count(),
        1,
        "{nat}"
    );
    drop(api);
}
