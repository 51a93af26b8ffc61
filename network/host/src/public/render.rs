//! The public-address NAT as `iptables-restore --noflush` input for the nat
//! table. Pure: the same mappings and table always render the same text.
//!
//! Three chains of stratus's own: `stratus-pub-pre` (jumped from
//! PREROUTING) and `stratus-pub-out` (from OUTPUT, for the network host's
//! own traffic) DNAT each public address to its fixed IP;
//! `stratus-pub-snat` (from POSTROUTING) makes each fixed IP's traffic
//! leaving through the public interface come from its public address. Every
//! other nat chain (`stratus-metadata` among them) is left as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// DNATs traffic arriving for a public address.
pub const PRE_CHAIN: &str = "stratus-pub-pre";
/// DNATs the network host's own traffic to a public address.
pub const OUT_CHAIN: &str = "stratus-pub-out";
/// SNATs a mapped instance's traffic leaving through the public interface.
pub const SNAT_CHAIN: &str = "stratus-pub-snat";

/// Each chain and the built-in chain that jumps to it, in render order.
const CHAINS: [(&str, &str); 3] = [
    (OUT_CHAIN, "OUTPUT"),
    (PRE_CHAIN, "PREROUTING"),
    (SNAT_CHAIN, "POSTROUTING"),
];

/// Public address → the fixed IP it leads to.
pub type Mappings = BTreeMap<Ipv4Addr, Ipv4Addr>;

/// What the nat table holds now of the public-address chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// The public-address chains present, with their rules as saved.
    pub chains: BTreeMap<String, Vec<String>>,
    /// The chains a built-in chain already jumps to.
    pub jumps: BTreeSet<String>,
}

impl Existing {
    /// Reads `iptables-save -t nat` output.
    pub fn parse(saved: &str) -> Self {
        let mut existing = Self::default();
        let ours = |name: &str| CHAINS.iter().any(|(chain, _)| *chain == name);
        for line in saved.lines().map(str::trim) {
            if let Some(declared) = line.strip_prefix(':') {
                let name = declared.split_whitespace().next().unwrap_or_default();
                if ours(name) {
                    existing.chains.entry(name.to_owned()).or_default();
                }
                continue;
            }
            let mut words = line.split_whitespace();
            if words.next() != Some("-A") {
                continue;
            }
            let Some(chain) = words.next() else { continue };
            if ours(chain) {
                existing
                    .chains
                    .entry(chain.to_owned())
                    .or_default()
                    .push(line.to_owned());
            }
            for (ours, builtin) in CHAINS {
                if line == jump_rule(builtin, ours) {
                    existing.jumps.insert(ours.to_owned());
                }
            }
        }
        existing
    }
}

fn jump_rule(builtin: &str, chain: &str) -> String {
    format!("-A {builtin} -j {chain}")
}

/// Each chain's rules for `mappings`; SNAT through `interface`.
fn chains(mappings: &Mappings, interface: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut chains: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (public, fixed) in mappings {
        for chain in [PRE_CHAIN, OUT_CHAIN] {
            chains.entry(chain).or_default().push(format!(
                "-A {chain} -d {public}/32 -j DNAT --to-destination {fixed}"
            ));
        }
        chains.entry(SNAT_CHAIN).or_default().push(format!(
            "-A {SNAT_CHAIN} -s {fixed}/32 -o {interface} -j SNAT --to-source {public}"
        ));
    }
    chains
}

/// The restore input that turns `existing` into `mappings`, or `None` when
/// the table already holds exactly that. The chains are declared (so
/// flushed) and refilled, the jumps inserted once at the head of their
/// built-in chains; with no mapping left, the jumps and chains are removed.
pub fn render(mappings: &Mappings, interface: &str, existing: &Existing) -> Option<String> {
    let wanted = chains(mappings, interface);
    let mut out = String::from("*nat\n");
    if wanted.is_empty() {
        if existing.chains.is_empty() && existing.jumps.is_empty() {
            return None;
        }
        for (chain, _) in CHAINS {
            if existing.chains.contains_key(chain) {
                let _ = writeln!(out, ":{chain} - [0:0]");
            }
        }
        for (chain, builtin) in CHAINS {
            if existing.jumps.contains(chain) {
                let _ = writeln!(out, "-D {builtin} -j {chain}");
            }
        }
        for (chain, _) in CHAINS {
            if existing.chains.contains_key(chain) {
                let _ = writeln!(out, "-X {chain}");
            }
        }
        out.push_str("COMMIT\n");
        return Some(out);
    }
    let same = CHAINS.iter().all(|(chain, _)| {
        existing.jumps.contains(*chain)
            && existing.chains.get(*chain).map(Vec::as_slice)
                == Some(wanted.get(chain).map(Vec::as_slice).unwrap_or_default())
    });
    if same {
        return None;
    }
    for (chain, _) in CHAINS {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for (chain, _) in CHAINS {
        for rule in wanted.get(chain).into_iter().flatten() {
            out.push_str(rule);
            out.push('\n');
        }
    }
    for (chain, builtin) in CHAINS {
        if !existing.jumps.contains(chain) {
            let _ = writeln!(out, "-I {builtin} 1 -j {chain}");
        }
    }
    out.push_str("COMMIT\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("address")
    }

    fn two() -> Mappings {
        Mappings::from([
            (ip("172.24.4.20"), ip("10.0.0.5")),
            (ip("172.24.4.10"), ip("10.0.0.3")),
        ])
    }

    /// A table with the metadata DNAT and nothing of ours.
    const METADATA_ONLY: &str = "\
# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:stratus-metadata - [0:0]
-A PREROUTING -j stratus-metadata
-A stratus-metadata -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.0.1:8775
COMMIT
";

    const TWO_MAPPED: &str = "\
*nat
:stratus-pub-out - [0:0]
:stratus-pub-pre - [0:0]
:stratus-pub-snat - [0:0]
-A stratus-pub-out -d 172.24.4.10/32 -j DNAT --to-destination 10.0.0.3
-A stratus-pub-out -d 172.24.4.20/32 -j DNAT --to-destination 10.0.0.5
-A stratus-pub-pre -d 172.24.4.10/32 -j DNAT --to-destination 10.0.0.3
-A stratus-pub-pre -d 172.24.4.20/32 -j DNAT --to-destination 10.0.0.5
-A stratus-pub-snat -s 10.0.0.3/32 -o stratus-pub -j SNAT --to-source 172.24.4.10
-A stratus-pub-snat -s 10.0.0.5/32 -o stratus-pub -j SNAT --to-source 172.24.4.20
-I OUTPUT 1 -j stratus-pub-out
-I PREROUTING 1 -j stratus-pub-pre
-I POSTROUTING 1 -j stratus-pub-snat
COMMIT
";

    /// What `iptables-save -t nat` shows once `TWO_MAPPED` is applied.
    fn saved_after_two() -> String {
        let mut saved = String::from(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
             :stratus-metadata - [0:0]\n:stratus-pub-out - [0:0]\n:stratus-pub-pre - [0:0]\n\
             :stratus-pub-snat - [0:0]\n",
        );
        saved.push_str(
            "-A PREROUTING -j stratus-pub-pre\n-A PREROUTING -j stratus-metadata\n\
             -A OUTPUT -j stratus-pub-out\n-A POSTROUTING -j stratus-pub-snat\n",
        );
        for line in TWO_MAPPED.lines().filter(|l| l.starts_with("-A ")) {
            saved.push_str(line);
            saved.push('\n');
        }
        saved.push_str("COMMIT\n");
        saved
    }

    #[test]
    fn first_mappings_fill_the_chains_in_address_order_and_jump_once() {
        let existing = Existing::parse(METADATA_ONLY);
        assert_eq!(
            existing,
            Existing::default(),
            "stratus-metadata is not ours"
        );
        let text = render(&two(), "stratus-pub", &existing).expect("a change");
        assert_eq!(text, TWO_MAPPED);
        assert!(!text.contains("stratus-metadata"));
    }

    #[test]
    fn a_table_that_already_holds_the_mappings_needs_nothing() {
        let existing = Existing::parse(&saved_after_two());
        assert_eq!(existing.jumps.len(), 3);
        assert_eq!(render(&two(), "stratus-pub", &existing), None);
    }

    #[test]
    fn a_moved_address_refills_the_chains_without_new_jumps() {
        let existing = Existing::parse(&saved_after_two());
        let mut moved = two();
        moved.insert(ip("172.24.4.10"), ip("10.0.0.7"));
        let text = render(&moved, "stratus-pub", &existing).expect("a change");
        assert_eq!(
            text,
            "\
*nat
:stratus-pub-out - [0:0]
:stratus-pub-pre - [0:0]
:stratus-pub-snat - [0:0]
-A stratus-pub-out -d 172.24.4.10/32 -j DNAT --to-destination 10.0.0.7
-A stratus-pub-out -d 172.24.4.20/32 -j DNAT --to-destination 10.0.0.5
-A stratus-pub-pre -d 172.24.4.10/32 -j DNAT --to-destination 10.0.0.7
-A stratus-pub-pre -d 172.24.4.20/32 -j DNAT --to-destination 10.0.0.5
-A stratus-pub-snat -s 10.0.0.7/32 -o stratus-pub -j SNAT --to-source 172.24.4.10
-A stratus-pub-snat -s 10.0.0.5/32 -o stratus-pub -j SNAT --to-source 172.24.4.20
COMMIT
"
        );
    }

    #[test]
    fn no_mapping_left_removes_jumps_and_chains_and_spares_the_rest() {
        let existing = Existing::parse(&saved_after_two());
        let text = render(&Mappings::new(), "stratus-pub", &existing).expect("a change");
        assert_eq!(
            text,
            "\
*nat
:stratus-pub-out - [0:0]
:stratus-pub-pre - [0:0]
:stratus-pub-snat - [0:0]
-D OUTPUT -j stratus-pub-out
-D PREROUTING -j stratus-pub-pre
-D POSTROUTING -j stratus-pub-snat
-X stratus-pub-out
-X stratus-pub-pre
-X stratus-pub-snat
COMMIT
"
        );
    }

    #[test]
    fn nothing_mapped_and_nothing_there_is_no_change() {
        let existing = Existing::parse(METADATA_ONLY);
        assert_eq!(render(&Mappings::new(), "stratus-pub", &existing), None);
    }

    #[test]
    fn a_lost_jump_comes_back_alone() {
        let saved = saved_after_two().replace("-A OUTPUT -j stratus-pub-out\n", "");
        let text = render(&two(), "stratus-pub", &Existing::parse(&saved)).expect("a change");
        assert!(text.contains("-I OUTPUT 1 -j stratus-pub-out\n"), "{text}");
        assert!(!text.contains("-I PREROUTING"), "{text}");
        assert!(!text.contains("-I POSTROUTING"), "{text}");
    }
}
