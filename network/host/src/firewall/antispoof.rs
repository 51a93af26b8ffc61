//! Anti-spoofing on guest ports: the whole `bridge stratus` nftables table
//! as `nft -f` input. Pure: the same ports always render the same text.
//!
//! Frames are checked on the bridge itself, where a guest's port is known
//! for certain (its tap device), before any address is believed: a frame
//! from a guest must carry its MAC; IPv4 only from its fixed IP (and DHCP
//! discovery from 0.0.0.0); ARP only announcing its own IP and MAC; never a
//! DHCP server's reply; nothing else (no IPv6, no VLAN tags, no other
//! protocols). Towards a guest only its own unicast and broadcast or
//! multicast frames pass, so a flooded frame of a neighbour never reaches it.
//! The per-port facts live in sets, so the rules stay a constant few and a
//! lookup costs the same for one port or a thousand.
//!
//! A port whose source/destination check is off (a NAT instance) may also
//! send IPv4 from any address that is not the cloud's: the cloud's ranges
//! (every project's fixed range, the public range, link-local, and what no
//! host should see as a source) are a set of their own, so a neighbour's,
//! a gateway's or a public address stays unclaimable, and the metadata
//! service and group source rules keep trusting a source inside the cloud.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use stratus_rpc::wire::ids::InstanceId;

use super::render::InstanceFilter;

/// The bridge-family table stratus owns whole.
pub const TABLE: &str = "stratus";

/// Sources no guest may use, whatever the cloud's configuration: this
/// network (0.0.0.0/8, DHCP discovery aside), loopback, link-local (the
/// metadata address), multicast and the reserved rest.
pub const NEVER_SOURCES: [Ipv4Net; 4] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 3),
];

/// The cloud's ranges and [`NEVER_SOURCES`], merged where they overlap
/// (an interval set refuses overlapping elements) and sorted.
pub fn protected(cloud: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let all: Vec<Ipv4Net> = cloud
        .iter()
        .map(Ipv4Net::trunc)
        .chain(NEVER_SOURCES)
        .collect();
    Ipv4Net::aggregate(&all)
}

/// A set of exact elements (`interval`: of prefixes).
fn set(out: &mut String, name: &str, kind: &str, interval: bool, elements: &[String]) {
    let _ = writeln!(out, "\tset {name} {{\n\t\ttype {kind}");
    if interval {
        out.push_str("\t\tflags interval\n");
    }
    if !elements.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    out.push_str("\t}\n");
}

/// The `nft -f` input that makes the table hold exactly the ports of
/// `instances`, in one transaction: packets see the old table or the new
/// one, never a mix. With no instances the table is removed. `cloud`: the
/// cloud's own ranges, which unchecked ports may not send from.
pub fn render(instances: &BTreeMap<InstanceId, InstanceFilter>, cloud: &[Ipv4Net]) -> String {
    // Sorted by device, so the text does not depend on the instance ids.
    let ports: BTreeMap<&str, &InstanceFilter> =
        instances.values().map(|p| (p.device.as_str(), p)).collect();
    // Declaring the table first makes the delete succeed when it is absent.
    let mut out = format!("table bridge {TABLE}\ndelete table bridge {TABLE}\n");
    if ports.is_empty() {
        return out;
    }
    let _ = writeln!(out, "table bridge {TABLE} {{");
    let names: Vec<String> = ports.keys().map(|d| format!("\"{d}\"")).collect();
    let macs: Vec<String> = ports
        .values()
        .map(|p| format!("\"{}\" . {}", p.device, p.mac))
        .collect();
    let ips: Vec<String> = ports
        .values()
        .map(|p| format!("\"{}\" . {}", p.device, p.address))
        .collect();
    // 0.0.0.0 is an ARP probe's sender (RFC 5227): it claims nothing.
    let arps: Vec<String> = ports
        .values()
        .flat_map(|p| {
            [p.address, Ipv4Addr::UNSPECIFIED]
                .map(|ip| format!("\"{}\" . {} . {ip}", p.device, p.mac))
        })
        .collect();
    let unchecked: Vec<String> = ports
        .values()
        .filter(|p| !p.source_dest_check)
        .map(|p| format!("\"{}\"", p.device))
        .collect();
    let protected: Vec<String> = protected(cloud).iter().map(ToString::to_string).collect();
    set(&mut out, "ports", "ifname", false, &names);
    set(&mut out, "macs", "ifname . ether_addr", false, &macs);
    set(&mut out, "ips", "ifname . ipv4_addr", false, &ips);
    set(
        &mut out,
        "arps",
        "ifname . ether_addr . ipv4_addr",
        false,
        &arps,
    );
    set(&mut out, "unchecked", "ifname", false, &unchecked);
    set(&mut out, "protected", "ipv4_addr", true, &protected);
    out.push_str(
        "\tchain prerouting {
\t\ttype filter hook prerouting priority -200; policy accept;
\t\tiifname @ports jump from_guest
\t}
\tchain postrouting {
\t\ttype filter hook postrouting priority -200; policy accept;
\t\toifname @ports jump to_guest
\t}
\tchain from_guest {
\t\tiifname . ether saddr != @macs drop
\t\tether type arp iifname . arp saddr ether . arp saddr ip @arps accept
\t\tether type ip udp sport 67 drop
\t\tether type ip iifname . ip saddr @ips accept
\t\tether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
\t\tether type ip iifname @unchecked ip saddr != @protected accept
\t\tdrop
\t}
\tchain to_guest {
\t\toifname . ether daddr @macs accept
\t\tether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 accept
\t\tdrop
\t}
}
",
    );
    out
}
