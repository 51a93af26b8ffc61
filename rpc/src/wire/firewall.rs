//! Security group rules as they travel: validated when built or decoded, so
//! a bad protocol, port or CIDR never reaches an iptables rule.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::ids::SecurityGroupId;

/// A rule that does not make sense; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid security group rule: {0}")]
pub struct RuleError(pub String);

/// What a rule admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP, within a port range.
    Tcp,
    /// UDP, within a port range.
    Udp,
    /// ICMP, of a type (and code), or any.
    Icmp,
    /// Every protocol (EC2's `-1`).
    All,
}

/// The part of a rule that depends on its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Match {
    /// No further match (protocol `All`, or ICMP of any type).
    Any,
    /// Destination ports `from..=to` (TCP, UDP).
    Ports(u16, u16),
    /// ICMP type, and code when given.
    Icmp(u8, Option<u8>),
}

/// Where admitted traffic may come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An IPv4 network.
    Cidr(Ipv4Net),
    /// The instances of a security group.
    Group(SecurityGroupId),
}

/// A rule as EC2 clients state it; [`IngressRule`] is its checked form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// `tcp`, `udp`, `icmp`, `-1` (all), or their numbers 6, 17, 1.
    pub protocol: String,
    /// First port (TCP/UDP) or ICMP type; -1 for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// Last port (TCP/UDP) or ICMP code; -1 for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    /// Source network, e.g. `0.0.0.0/0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Source security group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_group: Option<String>,
}

/// A checked ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RuleSpec", into = "RuleSpec")]
pub struct IngressRule {
    /// Protocol admitted.
    pub protocol: Protocol,
    /// Ports or ICMP type.
    pub matches: Match,
    /// Admitted source.
    pub source: Source,
}

impl IngressRule {
    /// Every protocol to or from anywhere: EC2's default egress rule.
    pub fn allow_all() -> Self {
        Self {
            protocol: Protocol::All,
            matches: Match::Any,
            source: Source::Cidr(Ipv4Net::default()),
        }
    }
}

fn port(value: Option<i32>, name: &str) -> Result<Option<u16>, RuleError> {
    match value {
        None | Some(-1) => Ok(None),
        Some(p) => u16::try_from(p)
            .map(Some)
            .map_err(|_| RuleError(format!("{name} {p} is not a port (0-65535)"))),
    }
}

impl TryFrom<RuleSpec> for IngressRule {
    type Error = RuleError;

    fn try_from(spec: RuleSpec) -> Result<Self, RuleError> {
        let protocol = match spec.protocol.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            "icmp" | "1" => Protocol::Icmp,
            "-1" | "all" => Protocol::All,
            other => {
                let shown: String = other.chars().take(20).collect();
                return Err(RuleError(format!(
                    "protocol {shown:?} (use tcp, udp, icmp or -1)"
                )));
            }
        };
        let matches = match protocol {
            Protocol::All => Match::Any,
            Protocol::Tcp | Protocol::Udp => {
                let from = port(spec.from_port, "from port")?;
                let to = port(spec.to_port, "to port")?;
                match (from, to) {
                    (None, None) => Match::Ports(0, 65535),
                    (Some(from), Some(to)) if from <= to => Match::Ports(from, to),
                    (Some(from), Some(to)) => {
                        return Err(RuleError(format!("from port {from} is above to port {to}")));
                    }
                    _ => return Err(RuleError("give both ports, or neither".into())),
                }
            }
            Protocol::Icmp => {
                let kind = spec.from_port.unwrap_or(-1);
                let code = spec.to_port.unwrap_or(-1);
                let byte = |v: i32, what: &str| {
                    u8::try_from(v).map_err(|_| RuleError(format!("ICMP {what} {v} (0-255 or -1)")))
                };
                match (kind, code) {
                    (-1, -1) => Match::Any,
                    (-1, _) => return Err(RuleError("an ICMP code needs an ICMP type".into())),
                    (t, -1) => Match::Icmp(byte(t, "type")?, None),
                    (t, c) => Match::Icmp(byte(t, "type")?, Some(byte(c, "code")?)),
                }
            }
        };
        let source = match (spec.cidr, spec.source_group) {
            (Some(cidr), None) => {
                let net: Ipv4Net = cidr.parse().map_err(|_| {
                    let shown: String = cidr.chars().take(40).collect();
                    RuleError(format!("CIDR {shown:?} is not an IPv4 network"))
                })?;
                Source::Cidr(net.trunc())
            }
            (None, Some(group)) => Source::Group(
                group
                    .parse()
                    .map_err(|e: super::ids::InvalidId| RuleError(e.to_string()))?,
            ),
            (None, None) => return Err(RuleError("a rule needs a CIDR or a source group".into())),
            (Some(_), Some(_)) => {
                return Err(RuleError("give a CIDR or a source group, not both".into()));
            }
        };
        Ok(Self {
            protocol,
            matches,
            source,
        })
    }
}

impl From<IngressRule> for RuleSpec {
    fn from(rule: IngressRule) -> Self {
        let protocol = match rule.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "-1",
        };
        let (from_port, to_port) = match rule.matches {
            Match::Any => (None, None),
            Match::Ports(from, to) => (Some(i32::from(from)), Some(i32::from(to))),
            Match::Icmp(t, c) => (Some(i32::from(t)), Some(c.map_or(-1, i32::from))),
        };
        let (cidr, source_group) = match rule.source {
            Source::Cidr(net) => (Some(net.to_string()), None),
            Source::Group(group) => (None, Some(group.to_string())),
        };
        Self {
            protocol: protocol.to_owned(),
            from_port,
            to_port,
            cidr,
            source_group,
        }
    }
}

/// A security group's rules and its members' addresses, fanned out to every
/// compute host when either changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupUpdate {
    /// The group.
    pub group: SecurityGroupId,
    /// Its ingress rules.
    pub rules: Vec<IngressRule>,
    /// Its egress rules: a rule's `source` is where its traffic may go.
    /// Empty lets nothing out (every group EC2 creates starts with one
    /// allow-all rule).
    #[serde(default)]
    pub egress: Vec<IngressRule>,
    /// Fixed IPs of its instances, for rules that name it as a source.
    pub members: Vec<Ipv4Addr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        protocol: &str,
        from: Option<i32>,
        to: Option<i32>,
        cidr: Option<&str>,
        group: Option<&str>,
    ) -> RuleSpec {
        RuleSpec {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr: cidr.map(Into::into),
            source_group: group.map(Into::into),
        }
    }

    #[test]
    fn ec2_style_rules_parse() {
        let ssh = IngressRule::try_from(spec("tcp", Some(22), Some(22), Some("0.0.0.0/0"), None))
            .expect("ssh");
        assert_eq!(ssh.matches, Match::Ports(22, 22));
        let all = IngressRule::try_from(spec("-1", None, None, None, Some("sg-0123456789abcdef0")))
            .expect("all");
        assert_eq!((all.protocol, all.matches), (Protocol::All, Match::Any));
        let ping = IngressRule::try_from(spec("icmp", Some(8), Some(-1), Some("10.0.0.0/8"), None))
            .expect("ping");
        assert_eq!(ping.matches, Match::Icmp(8, None));
        let host_bits =
            IngressRule::try_from(spec("6", Some(80), Some(81), Some("10.1.2.3/8"), None))
                .expect("tcp");
        assert_eq!(
            host_bits.source,
            Source::Cidr("10.0.0.0/8".parse().expect("net"))
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let cases = [
            (spec("gre", None, None, Some("0.0.0.0/0"), None), "protocol"),
            (
                spec("tcp", Some(22), Some(21), Some("0.0.0.0/0"), None),
                "above",
            ),
            (
                spec("tcp", Some(70000), Some(70001), Some("0.0.0.0/0"), None),
                "not a port",
            ),
            (
                spec("tcp", Some(22), None, Some("0.0.0.0/0"), None),
                "both ports",
            ),
            (
                spec("tcp", Some(22), Some(22), Some("0.0.0.0/0; rm -rf /"), None),
                "CIDR",
            ),
            (spec("tcp", Some(22), Some(22), Some("::/0"), None), "CIDR"),
            (
                spec("tcp", Some(22), Some(22), None, Some("default")),
                "sg-",
            ),
            (spec("tcp", Some(22), Some(22), None, None), "needs a CIDR"),
            (
                spec("icmp", Some(-1), Some(3), Some("0.0.0.0/0"), None),
                "needs an ICMP type",
            ),
            (
                spec("icmp", Some(300), Some(-1), Some("0.0.0.0/0"), None),
                "ICMP type",
            ),
        ];
        for (spec, why) in cases {
            let err = IngressRule::try_from(spec.clone()).expect_err("refused");
            assert!(err.to_string().contains(why), "{spec:?}: {err}");
        }
    }

    #[test]
    fn rules_are_checked_when_decoded_from_the_wire() {
        let bad = r#"{"protocol":"tcp","from_port":1,"to_port":2,"cidr":"-j ACCEPT"}"#;
        assert!(serde_json::from_str::<IngressRule>(bad).is_err());
        let good = IngressRule::try_from(spec("udp", Some(53), Some(53), Some("10.0.0.0/8"), None))
            .expect("udp");
        let wire = serde_json::to_string(&good).expect("encode");
        assert_eq!(
            serde_json::from_str::<IngressRule>(&wire).expect("decode"),
            good
        );
    }
}
