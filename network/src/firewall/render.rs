//! The whole stratus part of the filter table as `iptables-restore` input.
//! Pure: the same state always renders the same text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use stratus_rpc::wire::firewall::{IngressRule, Match, Protocol, Source};
use stratus_rpc::wire::ids::{InstanceId, SecurityGroupId};

/// Every chain stratus owns starts with this.
pub const PREFIX: &str = "stratus-";
/// The chain FORWARD jumps to.
pub const LOCAL_CHAIN: &str = "stratus-local";
/// The kernel's limit on chain names.
pub const MAX_CHAIN_LEN: usize = 28;

/// One instance on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Its fixed IP.
    pub address: Ipv4Addr,
    /// Its network's DHCP server, whose replies it must get.
    pub dhcp_server: Ipv4Addr,
    /// Its security groups, in order.
    pub groups: Vec<SecurityGroupId>,
}

/// A security group's rules and its members' addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    /// Ingress rules.
    pub rules: Vec<IngressRule>,
    /// Fixed IPs of the group's instances (on any host).
    pub members: Vec<Ipv4Addr>,
}

/// What the host's firewall should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    let hex = id.0.simple().to_string();
    format!("{PREFIX}inst-{}", &hex[..15])
}

/// `stratus-sg-` and the group's hex digits (at most 17).
pub fn group_chain(id: &SecurityGroupId) -> String {
    format!("{PREFIX}sg-{}", id.hex())
}

fn rule_line(chain: &str, rule: &IngressRule, source: Ipv4Addr, prefix: u8) -> String {
    let mut line = format!("-A {chain} -s {source}/{prefix}");
    match (rule.protocol, rule.matches) {
        (Protocol::All, _) => {}
        (Protocol::Tcp | Protocol::Udp, Match::Ports(from, to)) => {
            let p = if rule.protocol == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            let ports = if from == to {
                from.to_string()
            } else {
                format!("{from}:{to}")
            };
            let _ = write!(line, " -p {p} -m {p} --dport {ports}");
        }
        (Protocol::Tcp | Protocol::Udp, _) => {
            let p = if rule.protocol == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            let _ = write!(line, " -p {p}");
        }
        (Protocol::Icmp, Match::Icmp(kind, Some(code))) => {
            let _ = write!(line, " -p icmp -m icmp --icmp-type {kind}/{code}");
        }
        (Protocol::Icmp, Match::Icmp(kind, None)) => {
            let _ = write!(line, " -p icmp -m icmp --icmp-type {kind}");
        }
        (Protocol::Icmp, _) => line.push_str(" -p icmp"),
    }
    line.push_str(" -j ACCEPT");
    line
}

/// The restore input that turns `existing` into `state`: every stratus chain
/// declared (and so flushed) and refilled, stale ones deleted, the FORWARD
/// jump added once. With no instances, everything stratus made is removed.
pub fn render(state: &FirewallState, existing: &Existing) -> String {
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !state.instances.is_empty() {
        let mut local = Vec::new();
        let mut used_groups = BTreeSet::new();
        for (id, instance) in &state.instances {
            let chain = instance_chain(id);
            local.push(format!(
                "-A {LOCAL_CHAIN} -d {}/32 -j {chain}",
                instance.address
            ));
            let mut rules = vec![
                format!("-A {chain} -m conntrack --ctstate INVALID -j DROP"),
                format!("-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
                format!(
                    "-A {chain} -s {}/32 -p udp -m udp --sport 67 --dport 68 -j ACCEPT",
                    instance.dhcp_server
                ),
            ];
            for group in &instance.groups {
                rules.push(format!("-A {chain} -j {}", group_chain(group)));
                used_groups.insert(group.clone());
            }
            rules.push(format!("-A {chain} -j DROP"));
            chains.insert(chain, rules);
        }
        chains.insert(LOCAL_CHAIN.to_owned(), local);
        for group in used_groups {
            let chain = group_chain(&group);
            let mut rules = Vec::new();
            // An unknown group admits nothing until its rules arrive.
            let filter = state.groups.get(&group).cloned().unwrap_or_default();
            for rule in &filter.rules {
                match &rule.source {
                    Source::Cidr(net) => {
                        rules.push(rule_line(&chain, rule, net.network(), net.prefix_len()));
                    }
                    Source::Group(source) => {
                        let members = state.groups.get(source).map(|g| g.members.as_slice());
                        for member in members.unwrap_or_default() {
                            rules.push(rule_line(&chain, rule, *member, 32));
                        }
                    }
                }
            }
            chains.insert(chain, rules);
        }
    }

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
