//! Public addresses on the network host: the NAT that maps each to its
//! instance's fixed IP, and the addresses themselves, bound as /32 on the
//! public interface so they answer ARP on the public link.
//!
//! One apply takes the whole set of mappings: addresses no longer wanted are
//! unbound first, then the NAT is replaced in one atomic restore, then new
//! addresses are bound. So an address is never bound without its NAT, and a
//! moved address (same public, new fixed IP) is one restore and nothing else.

pub mod render;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::iptables::Iptables;
use crate::{CommandError, HostCommands, check_ifname};
use render::{Existing, Mappings, render};

/// Applies public-address mappings on this host.
#[derive(Debug)]
pub struct PublicNat {
    host: Arc<dyn HostCommands>,
    iptables: Iptables,
    range: Ipv4Net,
    interface: String,
    /// The mappings last applied in full; held through each apply, so two
    /// applies never interleave.
    applied: Mutex<Mappings>,
}

impl PublicNat {
    /// Maps addresses of `range` on `interface`, through `host` and
    /// `iptables` (which should run on the same host).
    pub fn new(
        host: Arc<dyn HostCommands>,
        iptables: Iptables,
        range: Ipv4Net,
        interface: &str,
    ) -> Result<Self, CommandError> {
        check_ifname(interface)?;
        Ok(Self {
            host,
            iptables,
            range,
            interface: interface.to_owned(),
            applied: Mutex::new(Mappings::new()),
        })
    }

    /// The mappings last applied.
    pub async fn applied(&self) -> Mappings {
        self.applied.lock().await.clone()
    }

    /// Makes the host hold exactly `wanted` (public → fixed): NAT rules and
    /// bound addresses. Addresses outside the public range are refused
    /// (logged and left out), never bound.
    pub async fn apply(&self, wanted: &Mappings) -> Result<(), CommandError> {
        let mut applied = self.applied.lock().await;
        let mut wanted = wanted.clone();
        wanted.retain(|public, fixed| {
            let inside = self.range.contains(public);
            if !inside {
                warn!(%public, %fixed, range = %self.range, "a public address outside the public range; not mapped");
            }
            inside
        });
        if !wanted.is_empty() {
            self.ensure_interface().await?;
        }
        let bound = self.bound().await?;
        for address in bound.iter().filter(|a| !wanted.contains_key(a)) {
            self.ip(&[
                "addr",
                "del",
                &format!("{address}/32"),
                "dev",
                &self.interface,
            ])
            .await?;
            info!(%address, "public address unbound");
        }
        let interface = self.interface.clone();
        self.iptables
            .update_table("nat", |saved| {
                render(&wanted, &interface, &Existing::parse(saved))
            })
            .await?;
        for address in wanted.keys().filter(|a| !bound.contains(a)) {
            self.ip(&[
                "addr",
                "replace",
                &format!("{address}/32"),
                "dev",
                &self.interface,
            ])
            .await?;
            info!(%address, "public address bound");
        }
        if *applied != wanted {
            info!(mappings = wanted.len(), "public addresses applied");
        }
        *applied = wanted;
        Ok(())
    }

    /// The interface, made if missing (a dummy, else a bridge), up, with the public range
    /// on-link (its addresses are /32s, which give no route of their own).
    async fn ensure_interface(&self) -> Result<(), CommandError> {
        let name = self.interface.as_str();
        if self.ip(&["-o", "link", "show", "dev", name]).await.is_err() {
            // A kernel without the dummy driver gets a bridge with no port,
            // which holds addresses as well.
            if let Err(e) = self.ip(&["link", "add", name, "type", "dummy"]).await {
                warn!(interface = name, error = %e, "no dummy interface; making a bridge instead");
                self.ip(&["link", "add", name, "type", "bridge"]).await?;
            }
            info!(interface = name, "public interface made");
        }
        self.ip(&["link", "set", name, "up"]).await?;
        let range = self.range.to_string();
        self.ip(&["route", "replace", &range, "dev", name]).await?;
        Ok(())
    }

    /// The /32 addresses of the public range bound on the interface now
    /// (none when it does not exist). Anything else on it is not ours.
    async fn bound(&self) -> Result<BTreeSet<Ipv4Addr>, CommandError> {
        let name = self.interface.as_str();
        if self.ip(&["-o", "link", "show", "dev", name]).await.is_err() {
            return Ok(BTreeSet::new());
        }
        let listed = self.ip(&["-4", "-o", "addr", "show", "dev", name]).await?;
        Ok(parse_bound(&listed, &self.range))
    }

    async fn ip(&self, args: &[&str]) -> Result<String, CommandError> {
        self.host.stdout("ip", args).await
    }
}

/// The /32 addresses inside `range` in `ip -4 -o addr show` output.
fn parse_bound(listed: &str, range: &Ipv4Net) -> BTreeSet<Ipv4Addr> {
    let mut bound = BTreeSet::new();
    for line in listed.lines() {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if word != "inet" {
                continue;
            }
            let Some((address, prefix)) = words.next().and_then(|a| a.split_once('/')) else {
                break;
            };
            if let (Ok(address), "32") = (address.parse::<Ipv4Addr>(), prefix)
                && range.contains(&address)
            {
                bound.insert(address);
            }
            break;
        }
    }
    bound
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::FakeHost;

    fn nat(host: &Arc<FakeHost>, lock_dir: PathBuf) -> PublicNat {
        let commands: Arc<dyn HostCommands> = host.clone();
        let range = "172.24.4.0/24".parse().expect("range");
        PublicNat::new(
            commands.clone(),
            Iptables::new(commands, lock_dir),
            range,
            "stratus-pub",
        )
        .expect("nat")
    }

    fn line(call: &[String]) -> String {
        call.join(" ")
    }

    #[test]
    fn only_our_range_s_host_addresses_count_as_bound() {
        let listed = "\
7: stratus-pub    inet 172.24.4.10/32 scope global stratus-pub\\       valid_lft forever preferred_lft forever
7: stratus-pub    inet 172.24.4.2/24 scope global stratus-pub\\       valid_lft forever preferred_lft forever
7: stratus-pub    inet 192.0.2.9/32 scope global stratus-pub\\       valid_lft forever preferred_lft forever
";
        let range = "172.24.4.0/24".parse().expect("range");
        assert_eq!(
            parse_bound(listed, &range),
            BTreeSet::from(["172.24.4.10".parse().expect("ip")])
        );
    }

    #[tokio::test]
    async fn a_missing_interface_is_made_and_the_nat_comes_before_the_binding() {
        let host = Arc::new(FakeHost::new());
        let dir = tempfile_dir();
        host.answer("ip", Err("Device \"stratus-pub\" does not exist."));
        let nat = nat(&host, dir.clone());
        let wanted = Mappings::from([(
            "172.24.4.10".parse().expect("ip"),
            "10.0.0.3".parse().expect("ip"),
        )]);
        nat.apply(&wanted).await.expect("apply");
        let calls: Vec<String> = host.calls().iter().map(|c| line(c)).collect();
        let at = |wanted: &str| {
            calls
                .iter()
                .position(|c| c == wanted)
                .unwrap_or_else(|| panic!("no {wanted} in {calls:#?}"))
        };
        assert!(at("ip link add stratus-pub type dummy") < at("ip link set stratus-pub up"));
        assert!(at("ip route replace 172.24.4.0/24 dev stratus-pub") < at("iptables-save -t nat"));
        assert!(
            at("iptables-restore -w --noflush")
                < at("ip addr replace 172.24.4.10/32 dev stratus-pub")
        );
        assert!(host.stdins()[0].contains("--to-destination 10.0.0.3"));
        assert_eq!(nat.applied().await, wanted);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_unwanted_address_is_unbound_before_its_nat_goes_and_outsiders_are_refused() {
        let host = Arc::new(FakeHost::new());
        let dir = tempfile_dir();
        // link show (exists), addr show: one of ours bound.
        host.answer("ip", Ok(""));
        host.answer(
            "ip",
            Ok("7: stratus-pub    inet 172.24.4.10/32 scope global stratus-pub\n"),
        );
        host.answer(
            "iptables-save",
            Ok("*nat\n:stratus-pub-pre - [0:0]\n-A PREROUTING -j stratus-pub-pre\nCOMMIT\n"),
        );
        let nat = nat(&host, dir.clone());
        let outsider = Mappings::from([(
            "192.0.2.9".parse().expect("ip"),
            "10.0.0.3".parse().expect("ip"),
        )]);
        nat.apply(&outsider).await.expect("apply");
        let calls: Vec<String> = host.calls().iter().map(|c| line(c)).collect();
        let del = calls
            .iter()
            .position(|c| c == "ip addr del 172.24.4.10/32 dev stratus-pub")
            .expect("unbound");
        let restore = calls
            .iter()
            .position(|c| c == "iptables-restore -w --noflush")
            .expect("restored");
        assert!(del < restore, "{calls:#?}");
        assert!(!calls.iter().any(|c| c.contains("192.0.2.9")), "{calls:#?}");
        assert!(!calls.iter().any(|c| c.contains("dummy")), "{calls:#?}");
        assert!(host.stdins()[0].contains("-X stratus-pub-pre"));
        assert!(nat.applied().await.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "stratus-public-nat-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}
