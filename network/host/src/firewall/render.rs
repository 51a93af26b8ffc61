//! The whole stratus part of the filter table as `iptables-restore` input.
//! Pure: the same state always renders the same text.
//!
//! FORWARD jumps to `stratus-local`, which sends traffic for an instance
//! here to its ingress chain (`stratus-inst-…`) and everything else to
//! `stratus-egress`, which sends traffic from an instance here to its egress
//! chain (`stratus-out-…`). An ingress rule that matches jumps to
//! `stratus-pass`: the sender's egress chain decides if the sender is one of
//! ours, else it is accepted; so traffic between two instances here passes
//! only when both sides' groups allow it. Egress and ingress chains end in
//! DROP; traffic that involves no instance returns to FORWARD untouched.
//! Source addresses can be trusted because the bridge table of
//! [`super::antispoof`] pins every guest port to its address. A port whose
//! source/destination check is off (a NAT instance) may send from addresses
//! outside the cloud, and be sent to them: its traffic is dispatched by its
//! tap device as well (`physdev`), so no foreign address skips its chains.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use stratus_rpc::wire::firewall::{IngressRule, Match, Protocol, Source};
use stratus_rpc::wire::ids::{InstanceId, MacAddress, SecurityGroupId};

use super::metadata::METADATA_ADDRESS;

/// Every chain stratus owns starts with this.
pub const PREFIX: &str = "stratus-";
/// The chain FORWARD jumps to.
pub const LOCAL_CHAIN: &str = "stratus-local";
/// Dispatches traffic from instances here to their egress chains.
pub const EGRESS_CHAIN: &str = "stratus-egress";
/// Where a matching ingress rule goes: the sender's egress check, then accept.
pub const PASS_CHAIN: &str = "stratus-pass";
/// The kernel's limit on chain names.
pub const MAX_CHAIN_LEN: usize = 28;

/// One instance on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFilter {
    /// Its fixed IP.
    pub address: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddress,
    /// The tap device of its port on the bridge (see [`port_device`]).
    pub device: String,
    /// Its network's DHCP server, whose replies it must get.
    pub dhcp_server: Ipv4Addr,
    /// Its security groups, in order.
    pub groups: Vec<SecurityGroupId>,
    /// EC2's source/destination check: off, the guest may send from (and
    /// be sent) addresses not its own, as long as none is the cloud's.
    /// States saved before the flag existed read back as checked.
    #[serde(default = "checked")]
    pub source_dest_check: bool,
}

fn checked() -> bool {
    true
}

/// A security group's rules and its members' addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFilter {
    /// Ingress rules.
    pub rules: Vec<IngressRule>,
    /// Egress rules (a rule's source is the destination).
    #[serde(default)]
    pub egress: Vec<IngressRule>,
    /// Fixed IPs of the group's instances (on any host).
    pub members: Vec<Ipv4Addr>,
}

/// What the host's firewall should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallState {
    /// Instances on this host.
    pub instances: BTreeMap<InstanceId, InstanceFilter>,
    /// Groups known to this host.
    pub groups: BTreeMap<SecurityGroupId, GroupFilter>,
}

/// What the table holds now, as far as stratus cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Chains named `stratus-…`.
    pub chains: BTreeSet<String>,
    /// Whether FORWARD already jumps to `stratus-local`.
    pub forward_jump: bool,
}

impl Existing {
    /// Reads `iptables-save -t filter` output.
    pub fn parse(saved: &str) -> Self {
        let mut existing = Self::default();
        for line in saved.lines() {
            if let Some(chain) = line.strip_prefix(':') {
                let name = chain.split_whitespace().next().unwrap_or_default();
                if name.starts_with(PREFIX) {
                    existing.chains.insert(name.to_owned());
                }
            } else if line.trim() == format!("-A FORWARD -j {LOCAL_CHAIN}") {
                existing.forward_jump = true;
            }
        }
        existing
    }
}

/// `stratus-inst-` and the first 15 hex digits of the instance's UUID.
pub fn instance_chain(id: &InstanceId) -> String {
    format!("{PREFIX}inst-{}", &hex(id)[..15])
}

/// `stratus-out-` and the first 15 hex digits of the instance's UUID.
pub fn egress_chain(id: &InstanceId) -> String {
    format!("{PREFIX}out-{}", &hex(id)[..15])
}

/// `stratus-sg-` and the group's hex digits (at most 17).
pub fn group_chain(id: &SecurityGroupId) -> String {
    format!("{PREFIX}sg-{}", id.hex())
}

/// `stratus-eg-` and the group's hex digits (at most 17).
pub fn group_egress_chain(id: &SecurityGroupId) -> String {
    format!("{PREFIX}eg-{}", id.hex())
}

/// The guest's tap device: `tap` and the first 12 hex digits of its UUID
/// (15 characters, the kernel's limit). The domain XML names it, so the
/// port's filters exist before the device does.
pub fn port_device(id: &InstanceId) -> String {
    format!("tap{}", &hex(id)[..12])
}

fn hex(id: &InstanceId) -> String {
    id.0.simple().to_string()
}

/// Which end of the traffic a rule's peer is.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

fn rule_line(
    chain: &str,
    rule: &IngressRule,
    peer: Ipv4Addr,
    prefix: u8,
    direction: Direction,
) -> String {
    let (side, target) = match direction {
        Direction::Ingress => ("-s", PASS_CHAIN),
        Direction::Egress => ("-d", "ACCEPT"),
    };
    let mut line = format!("-A {chain} {side} {peer}/{prefix}");
    let name = match rule.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "",
    };
    match (rule.protocol, rule.matches) {
        (Protocol::All, _) => {}
        (Protocol::Tcp | Protocol::Udp, Match::Ports(from, to)) => {
            let ports = if from == to {
                from.to_string()
            } else {
                format!("{from}:{to}")
            };
            let _ = write!(line, " -p {name} -m {name} --dport {ports}");
        }
        (Protocol::Icmp, Match::Icmp(kind, Some(code))) => {
            let _ = write!(line, " -p icmp -m icmp --icmp-type {kind}/{code}");
        }
        (Protocol::Icmp, Match::Icmp(kind, None)) => {
            let _ = write!(line, " -p icmp -m icmp --icmp-type {kind}");
        }
        (_, _) => {
            let _ = write!(line, " -p {name}");
        }
    }
    let _ = write!(line, " -j {target}");
    line
}

/// A group's rules of one direction as chain lines; a rule naming a group
/// becomes one line per member of that group.
fn group_lines(
    state: &FirewallState,
    chain: &str,
    rules: &[IngressRule],
    direction: Direction,
) -> Vec<String> {
    let mut lines = Vec::new();
    for rule in rules {
        match &rule.source {
            Source::Cidr(net) => lines.push(rule_line(
                chain,
                rule,
                net.network(),
                net.prefix_len(),
                direction,
            )),
            Source::Group(peer) => {
                let members = state.groups.get(peer).map(|g| g.members.as_slice());
                for member in members.unwrap_or_default() {
                    lines.push(rule_line(chain, rule, *member, 32, direction));
                }
            }
        }
    }
    lines
}

/// Every chain stratus should hold, with its lines.
fn chains(state: &FirewallState) -> BTreeMap<String, Vec<String>> {
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if state.instances.is_empty() {
        return chains;
    }
    // Unchecked ports first: whatever leaves or enters by such a port is
    // judged by that port's chains, whichever addresses it carries.
    let (mut local, mut egress) = (Vec::new(), Vec::new());
    for (id, instance) in state.instances.iter().filter(|(_, i)| !i.source_dest_check) {
        let device = &instance.device;
        // Only bridged traffic has a known output port in FORWARD.
        local.push(format!(
            "-A {LOCAL_CHAIN} -m physdev --physdev-out {device} --physdev-is-bridged -j {}",
            instance_chain(id)
        ));
        // The input port is known for bridged and routed traffic alike.
        egress.push(format!(
            "-A {EGRESS_CHAIN} -m physdev --physdev-in {device} -j {}",
            egress_chain(id)
        ));
    }
    let mut used_groups = BTreeSet::new();
    for (id, instance) in &state.instances {
        let (inbound, outbound) = (instance_chain(id), egress_chain(id));
        let address = instance.address;
        local.push(format!("-A {LOCAL_CHAIN} -d {address}/32 -j {inbound}"));
        egress.push(format!("-A {EGRESS_CHAIN} -s {address}/32 -j {outbound}"));
        let mut ins = vec![
            format!("-A {inbound} -m conntrack --ctstate INVALID -j DROP"),
            format!("-A {inbound} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            format!(
                "-A {inbound} -s {}/32 -p udp -m udp --sport 67 --dport 68 -j ACCEPT",
                instance.dhcp_server
            ),
        ];
        let mut outs = vec![
            format!("-A {outbound} -m conntrack --ctstate INVALID -j DROP"),
            format!("-A {outbound} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            // The metadata service is not subject to groups, as in EC2.
            format!("-A {outbound} -m conntrack --ctorigdst {METADATA_ADDRESS}/32 -j ACCEPT"),
        ];
        for group in &instance.groups {
            ins.push(format!("-A {inbound} -j {}", group_chain(group)));
            outs.push(format!("-A {outbound} -j {}", group_egress_chain(group)));
            used_groups.insert(group.clone());
        }
        ins.push(format!("-A {inbound} -j DROP"));
        outs.push(format!("-A {outbound} -j DROP"));
        chains.insert(inbound, ins);
        chains.insert(outbound, outs);
    }
    local.push(format!("-A {LOCAL_CHAIN} -j {EGRESS_CHAIN}"));
    chains.insert(LOCAL_CHAIN.to_owned(), local);
    chains.insert(EGRESS_CHAIN.to_owned(), egress);
    chains.insert(
        PASS_CHAIN.to_owned(),
        vec![
            format!("-A {PASS_CHAIN} -j {EGRESS_CHAIN}"),
            format!("-A {PASS_CHAIN} -j ACCEPT"),
        ],
    );
    for group in used_groups {
        // An unknown group admits nothing until its rules arrive.
        let filter = state.groups.get(&group).cloned().unwrap_or_default();
        let (inbound, outbound) = (group_chain(&group), group_egress_chain(&group));
        let ins = group_lines(state, &inbound, &filter.rules, Direction::Ingress);
        let outs = group_lines(state, &outbound, &filter.egress, Direction::Egress);
        chains.insert(inbound, ins);
        chains.insert(outbound, outs);
    }
    chains
}

/// The restore input that turns `existing` into `state`: every stratus chain
/// declared (and so flushed) and refilled, stale ones deleted, the FORWARD
/// jump added once. With no instances, everything stratus made is removed.
pub fn render(state: &FirewallState, existing: &Existing) -> String {
    let chains = chains(state);
    let stale: Vec<&String> = existing
        .chains
        .iter()
        .filter(|c| !chains.contains_key(*c))
        .collect();
    let mut out = String::from("*filter\n");
    for chain in chains.keys().chain(stale.iter().copied()) {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    if chains.is_empty() && existing.forward_jump {
        let _ = writeln!(out, "-D FORWARD -j {LOCAL_CHAIN}");
    }
    for rules in chains.values() {
        for rule in rules {
            out.push_str(rule);
            out.push('\n');
        }
    }
    for chain in stale {
        let _ = writeln!(out, "-X {chain}");
    }
    if !chains.is_empty() && !existing.forward_jump {
        let _ = writeln!(out, "-I FORWARD 1 -j {LOCAL_CHAIN}");
    }
    out.push_str("COMMIT\n");
    out
}
