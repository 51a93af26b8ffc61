//! The rendered restore input for a golden set of instances and groups.
//! `STRATUS_UPDATE_GOLDEN=1 cargo test` rewrites the files; review the diff.

use std::collections::BTreeMap;

use stratus_host::firewall::antispoof;
use stratus_host::firewall::render::{
    Existing, FirewallState, GroupFilter, InstanceFilter, MAX_CHAIN_LEN, egress_chain, group_chain,
    group_egress_chain, instance_chain, port_device, render,
};
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec};
use stratus_rpc::wire::ids::{InstanceId, SecurityGroupId};
use stratus_test_support::golden;

fn id(n: u8) -> InstanceId {
    InstanceId(uuid::Uuid::from_bytes([n; 16]))
}

fn group(hex: &str) -> SecurityGroupId {
    format!("sg-{hex}").parse().expect("group id")
}

fn rule(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
    cidr: Option<&str>,
    source: Option<&str>,
) -> IngressRule {
    IngressRule::try_from(RuleSpec {
        protocol: protocol.into(),
        from_port: from,
        to_port: to,
        cidr: cidr.map(Into::into),
        source_group: source.map(Into::into),
    })
    .expect("valid rule")
}

fn web_and_db() -> FirewallState {
    let web = group("00000000000000aaa");
    let db = group("00000000000000bbb");
    let mut groups = BTreeMap::new();
    groups.insert(
        web.clone(),
        GroupFilter {
            rules: vec![
                rule("tcp", Some(22), Some(22), Some("0.0.0.0/0"), None),
                rule("tcp", Some(80), Some(81), Some("192.168.7.9/24"), None),
                rule("icmp", Some(8), Some(-1), Some("10.0.0.0/8"), None),
            ],
            egress: vec![IngressRule::allow_all()],
            members: vec!["10.0.0.3".parse().expect("ip")],
        },
    );
    groups.insert(
        db.clone(),
        GroupFilter {
            rules: vec![
                rule("tcp", Some(5432), Some(5432), None, Some(web.as_str())),
                rule("udp", None, None, Some("10.0.0.0/24"), None),
                rule("icmp", Some(3), Some(4), Some("0.0.0.0/0"), None),
                rule("-1", None, None, Some("10.0.1.0/24"), None),
            ],
            egress: vec![
                rule("tcp", Some(443), Some(443), Some("0.0.0.0/0"), None),
                rule("udp", Some(53), Some(53), Some("10.0.0.2/32"), None),
                rule("tcp", Some(8080), Some(8080), None, Some(web.as_str())),
            ],
            members: vec!["10.0.0.4".parse().expect("ip")],
        },
    );
    let mut instances = BTreeMap::new();
    instances.insert(id(1), port(1, "10.0.0.3", "02:16:3e:01:01:01", vec![web]));
    instances.insert(
        id(2),
        port(
            2,
            "10.0.0.4",
            "02:16:3e:02:02:02",
            vec![db, group("0000000000000cccc")],
        ),
    );
    FirewallState { instances, groups }
}

/// Instance `n`'s port: its address and MAC, in `groups`, DHCP from 10.0.0.2.
fn port(n: u8, address: &str, mac: &str, groups: Vec<SecurityGroupId>) -> InstanceFilter {
    InstanceFilter {
        address: address.parse().expect("ip"),
        mac: mac.parse().expect("mac"),
        device: port_device(&id(n)),
        dhcp_server: "10.0.0.2".parse().expect("ip"),
        groups,
        source_dest_check: true,
    }
}

#[test]
fn two_instances_in_fresh_table() {
    golden!(
        "two_instances_fresh.rules",
        &render(&web_and_db(), &Existing::default()),
    );
}

#[test]
fn stale_chains_are_flushed_and_deleted_and_the_jump_is_not_duplicated() {
    let saved = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:stratus-local - [0:0]\n\
                 :stratus-inst-999999999999999 - [0:0]\n:other-program - [0:0]\n\
                 -A FORWARD -j stratus-local\n-A FORWARD -j other-program\nCOMMIT\n";
    let existing = Existing::parse(saved);
    assert!(existing.forward_jump);
    assert!(
        !existing.chains.contains("other-program"),
        "another program's chain is not ours"
    );
    golden!(
        "two_instances_over_stale.rules",
        &render(&web_and_db(), &existing),
    );
}

#[test]
fn last_instance_gone_removes_everything_stratus_made() {
    let existing = Existing::parse(
        &render(&web_and_db(), &Existing::default()).replace("-I FORWARD 1", "-A FORWARD"),
    );
    golden!(
        "empty_over_two.rules",
        &render(&FirewallState::default(), &existing),
    );
}

#[test]
fn chain_and_port_names_fit_the_kernel_limits() {
    let (instance, widest) = (InstanceId::new(), group("0123456789abcdef0"));
    assert!(instance_chain(&instance).len() <= MAX_CHAIN_LEN);
    assert!(egress_chain(&instance).len() <= MAX_CHAIN_LEN);
    assert!(group_chain(&widest).len() <= MAX_CHAIN_LEN);
    assert!(group_egress_chain(&widest).len() <= MAX_CHAIN_LEN);
    assert_eq!(port_device(&instance).len(), 15, "IFNAMSIZ less the NUL");
}

/// The cloud's ranges: the fixed range, the public range, and a public
/// range inside the fixed one (merged, not refused).
fn cloud() -> Vec<ipnet::Ipv4Net> {
    ["10.0.0.0/16", "172.24.4.0/24", "10.0.7.0/24"]
        .map(|r| r.parse().expect("cidr"))
        .to_vec()
}

#[test]
fn two_ports_in_the_bridge_table() {
    golden!(
        "two_ports.nft",
        &antispoof::render(&web_and_db().instances, &cloud())
    );
}

/// [`web_and_db`] with instance 2's source/destination check off.
fn one_unchecked() -> FirewallState {
    let mut state = web_and_db();
    let port = state.instances.get_mut(&id(2)).expect("instance 2");
    port.source_dest_check = false;
    state
}

#[test]
fn an_unchecked_port_sends_from_any_address_outside_the_cloud() {
    let script = antispoof::render(&one_unchecked().instances, &cloud());
    golden!("one_unchecked.nft", &script);
    let device = port_device(&id(2));
    for line in [
        format!("\t\telements = {{ \"{device}\" }}"),
        "\t\tflags interval".to_owned(),
        "\t\telements = { 0.0.0.0/8, 10.0.0.0/16, 127.0.0.0/8, 169.254.0.0/16, 172.24.4.0/24, 224.0.0.0/3 }".to_owned(),
        "\t\tether type ip iifname @unchecked ip saddr != @protected accept".to_owned(),
    ] {
        assert!(script.lines().any(|l| l == line), "{line:?} not in:\n{script}");
    }
    // The checked port's pins, and every rule, are those of a checked cloud.
    let checked = antispoof::render(&web_and_db().instances, &cloud());
    let unlisted = script.replace(&format!("\t\telements = {{ \"{device}\" }}\n"), "");
    assert_eq!(unlisted, checked);
}

#[test]
fn an_unchecked_port_is_dispatched_to_its_chains_by_its_tap_as_well() {
    let rules = render(&one_unchecked(), &Existing::default());
    golden!("one_unchecked.rules", &rules);
    let (device, inbound, outbound) = (
        port_device(&id(2)),
        instance_chain(&id(2)),
        egress_chain(&id(2)),
    );
    let physdev = [
        format!(
            "-A stratus-local -m physdev --physdev-out {device} --physdev-is-bridged -j {inbound}"
        ),
        format!("-A stratus-egress -m physdev --physdev-in {device} -j {outbound}"),
    ];
    // Each before any dispatch by address, so no address picks another chain.
    for line in &physdev {
        let chain = line.split_whitespace().nth(1).expect("chain");
        let first = rules
            .lines()
            .find(|l| l.starts_with(&format!("-A {chain} ")))
            .expect("the chain has rules");
        assert_eq!(first, line, "{rules}");
    }
    // Nothing else differs from the checked rendering.
    let checked = render(&web_and_db(), &Existing::default());
    let without: Vec<&str> = rules
        .lines()
        .filter(|l| !physdev.iter().any(|p| p == l))
        .collect();
    assert_eq!(without, checked.lines().collect::<Vec<_>>());
}

#[test]
fn a_state_saved_before_the_check_existed_reads_back_checked() {
    let mut saved = serde_json::to_value(web_and_db()).expect("json");
    for port in saved["instances"]
        .as_object_mut()
        .expect("instances")
        .values_mut()
    {
        port.as_object_mut()
            .expect("port")
            .remove("source_dest_check");
    }
    let state: FirewallState = serde_json::from_value(saved).expect("an older state reads");
    assert_eq!(state, web_and_db());
}

#[test]
fn no_ports_remove_the_bridge_table() {
    let script = antispoof::render(&FirewallState::default().instances, &cloud());
    assert_eq!(
        script,
        "table bridge stratus\ndelete table bridge stratus\n"
    );
}
