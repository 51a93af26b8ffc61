//! What tenant isolation relies on, checked on the host before any guest
//! starts: without br_netfilter and `bridge-nf-call-iptables` the filter
//! chains never see traffic between guests on one bridge; without nft (and
//! the kernel's bridge family and concatenated sets) nothing pins a guest
//! port to its addresses; without iptables' conntrack (and physdev, for
//! unchecked ports) matches the chains do not load. Each check runs the
//! real thing through [`HostCommands`], in the worker's network namespace.

use std::collections::BTreeMap;

use stratus_rpc::wire::ids::InstanceId;

use crate::HostCommands;
use crate::firewall::antispoof;
use crate::firewall::render::{Existing, FirewallState, InstanceFilter, port_device, render};

/// The sysctl the filter chains need (per network namespace).
pub const BRIDGE_NF_SYSCTL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// What is missing for isolation to be enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gaps {
    /// One line per missing piece, saying what to do about it.
    pub missing: Vec<String>,
    /// Whether the bridge table can be applied at all (nft and its kernel
    /// support are there).
    pub nft_usable: bool,
}

impl Gaps {
    /// Nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
    }
}

impl std::fmt::Display for Gaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.missing.join("; "))
    }
}

/// A state of one sample guest, to try the real rules against the kernel.
fn sample() -> FirewallState {
    let id = InstanceId::new();
    let mut instances = BTreeMap::new();
    if let (Ok(mac), Ok(group)) = ("02:16:3e:00:00:01".parse(), "sg-00000000".parse()) {
        instances.insert(
            id,
            InstanceFilter {
                address: std::net::Ipv4Addr::new(192, 0, 2, 3),
                mac,
                device: port_device(&id),
                dhcp_server: std::net::Ipv4Addr::new(192, 0, 2, 2),
                groups: vec![group],
                // Unchecked, so the check loads every rule a port may need.
                source_dest_check: false,
            },
        );
    }
    FirewallState {
        instances,
        groups: BTreeMap::new(),
    }
}

/// Checks the host; every gap is listed, not just the first.
pub async fn check(host: &dyn HostCommands) -> Gaps {
    let mut gaps = Gaps::default();
    match host.run("cat", &[BRIDGE_NF_SYSCTL], None).await {
        Ok(out) if out.stdout.trim() == "1" => {}
        Ok(out) => gaps.missing.push(format!(
            "net.bridge.bridge-nf-call-iptables is {:?}, not 1: security-group rules would not see traffic between guests on one bridge (sysctl -w net.bridge.bridge-nf-call-iptables=1)",
            out.stdout.trim()
        )),
        Err(_) => gaps.missing.push(
            "br_netfilter is not loaded (no net.bridge.bridge-nf-call-iptables): security-group rules would not see traffic between guests on one bridge (modprobe br_netfilter)".to_owned(),
        ),
    }
    let state = sample();
    let cloud = [ipnet::Ipv4Net::new_assert(
        std::net::Ipv4Addr::new(192, 0, 2, 0),
        24,
    )];
    let bridge_table = antispoof::render(&state.instances, &cloud);
    match host.run("nft", &["-c", "-f", "-"], Some(bridge_table.as_bytes())).await {
        Ok(_) => gaps.nft_usable = true,
        Err(e) => gaps.missing.push(format!(
            "the anti-spoofing bridge table cannot be loaded (install nftables; the kernel needs nf_tables with the bridge family): {e}"
        )),
    }
    let filter = render(&state, &Existing::default());
    if let Err(e) = host
        .run(
            "iptables-restore",
            &["--test", "--noflush"],
            Some(filter.as_bytes()),
        )
        .await
    {
        gaps.missing.push(format!(
            "the filter chains cannot be loaded (install iptables; the kernel needs conntrack and physdev): {e}"
        ));
    }
    gaps
}
