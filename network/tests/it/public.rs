//! Public addresses: the controller's replica follows pushes and listings by
//! their sequences (on SQLite and PostgreSQL), and, in a network namespace
//! with the real `iptables` and `ip`, the mappings become nat rules and
//! bound addresses that follow re-maps, clears and a controller restart,
//! beside the metadata DNAT.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use stratus_host::firewall::metadata;
use stratus_host::iptables::Iptables;
use stratus_host::{CommandError, FakeHost, HostCommands, Output, RealHost};
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_rpc::wire::addresses::{MapPublicAddresses, PublicAddresses, PublicMapping};
use stratus_rpc::wire::ids::InstanceId;
use stratus_test_support::{Netns, TestDb, fixtures};

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

pub(crate) fn config(database_url: Option<String>) -> NetworkConfig {
    NetworkConfig {
        fixed_range: "10.7.0.0/24".into(),
        network_size: 64,
        dhcp: false,
        database_url,
        public_range: "172.24.4.0/24".into(),
        public_interface: "stratus-pub".into(),
        ..NetworkConfig::default()
    }
}

pub(crate) fn set(address: &str, instance_id: InstanceId, sequence: u64) -> MapPublicAddresses {
    MapPublicAddresses {
        set: vec![PublicMapping {
            address: ip(address),
            instance_id,
        }],
        clear: Vec::new(),
        sequence,
    }
}

async fn replica(manager: &NetworkManager) -> Vec<(Ipv4Addr, InstanceId)> {
    manager
        .public()
        .expect("public addresses on")
        .mappings()
        .await
        .expect("mappings")
        .into_iter()
        .map(|m| (m.address, m.instance_id))
        .collect()
}

async fn replica_follows_sequences(db: TestDb) {
    let state = tempfile::tempdir().expect("tempdir");
    let manager = NetworkManager::start(
        &config(Some(db.url())),
        state.path(),
        Arc::new(FakeHost::new()),
    )
    .await
    .expect("start");
    let (a, b, c) = (InstanceId::new(), InstanceId::new(), InstanceId::new());

    manager
        .map_public_addresses(&set("172.24.4.10", a, 20))
        .await
        .expect("push");
    // An older push for the same address arrives late: ignored.
    manager
        .map_public_addresses(&set("172.24.4.10", b, 15))
        .await
        .expect("push");
    assert_eq!(replica(&manager).await, vec![(ip("172.24.4.10"), a)]);

    // A listing taken before that push keeps the pushed address as pushed,
    // and is the truth for every other address.
    manager
        .map_public_addresses(&set("172.24.4.11", b, 5))
        .await
        .expect("push");
    let listing = PublicAddresses {
        mappings: vec![
            PublicMapping {
                address: ip("172.24.4.10"),
                instance_id: b,
            },
            PublicMapping {
                address: ip("172.24.4.12"),
                instance_id: c,
            },
        ],
        as_of: 18,
    };
    assert!(
        manager
            .replace_public_addresses(&listing)
            .await
            .expect("replace")
    );
    assert_eq!(
        replica(&manager).await,
        vec![(ip("172.24.4.10"), a), (ip("172.24.4.12"), c)]
    );

    // A clear newer than a listing: the address stays cleared though that
    // listing still names it, until a listing taken after the clear; the
    // listing's other addresses (its as_of is past their pushes) follow it.
    let clear = MapPublicAddresses {
        set: Vec::new(),
        clear: vec![ip("172.24.4.12")],
        sequence: 30,
    };
    manager.map_public_addresses(&clear).await.expect("clear");
    let stale = PublicAddresses {
        as_of: 25,
        ..listing.clone()
    };
    manager
        .replace_public_addresses(&stale)
        .await
        .expect("replace");
    assert_eq!(replica(&manager).await, vec![(ip("172.24.4.10"), b)]);
    let fresh = PublicAddresses {
        as_of: 40,
        ..listing
    };
    manager
        .replace_public_addresses(&fresh)
        .await
        .expect("replace");
    assert_eq!(
        replica(&manager).await,
        vec![(ip("172.24.4.10"), b), (ip("172.24.4.12"), c)]
    );
    // An empty listing is a real "nothing mapped".
    manager
        .replace_public_addresses(&PublicAddresses {
            mappings: Vec::new(),
            as_of: 50,
        })
        .await
        .expect("replace");
    assert_eq!(replica(&manager).await, vec![]);
    manager.ipam().store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_follows_sequences_on_sqlite() {
    replica_follows_sequences(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_follows_sequences_on_postgres() {
    replica_follows_sequences(TestDb::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_public_range_stops_the_controller_and_an_empty_one_turns_it_off() {
    let state = tempfile::tempdir().expect("tempdir");
    let host = Arc::new(FakeHost::new());
    let mut bad = config(None);
    bad.public_range = "172.24.4/24x".into();
    let e = NetworkManager::start(&bad, state.path(), host.clone())
        .await
        .expect_err("bad range");
    assert!(e.to_string().contains("public_range"), "{e}");

    let mut off = config(None);
    off.public_range = String::new();
    let manager = NetworkManager::start(&off, state.path(), host.clone())
        .await
        .expect("start");
    assert!(manager.public().is_none());
    manager
        .map_public_addresses(&set("172.24.4.10", InstanceId::new(), 1))
        .await
        .expect("ignored");
    assert!(host.calls().is_empty(), "{:?}", host.calls());
}

/// The real host in a namespace, remembering every command it ran.
#[derive(Debug)]
struct Recording {
    real: RealHost,
    calls: Mutex<Vec<String>>,
}

impl Recording {
    fn new(netns: &Netns) -> Arc<Self> {
        Arc::new(Self {
            real: RealHost::in_netns(netns.name()),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }
}

#[async_trait]
impl HostCommands for Recording {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, CommandError> {
        let line = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        self.calls.lock().expect("lock").push(line);
        self.real.run(program, args, stdin).await
    }

    fn netns(&self) -> Option<&str> {
        self.real.netns()
    }
}

fn nat(ns: &Netns) -> String {
    ns.run("iptables-save", &["-t", "nat"])
}

fn bound(ns: &Netns) -> String {
    ns.run("ip", &["-4", "-o", "addr", "show", "dev", "stratus-pub"])
}

fn dnat(public: &str, fixed: &str) -> String {
    format!("-A stratus-pub-pre -d {public}/32 -j DNAT --to-destination {fixed}")
}

fn snat(public: &str, fixed: &str) -> String {
    format!("-A stratus-pub-snat -s {fixed}/32 -o stratus-pub -j SNAT --to-source {public}")
}

async fn start(state: &Path, host: Arc<Recording>) -> NetworkManager {
    NetworkManager::start(&config(None), state, host)
        .await
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_become_nat_and_bound_addresses_that_follow_remaps_restarts_and_clears() {
    let ns = Netns::new("pub");
    let state = tempfile::tempdir().expect("tempdir");
    let host = Recording::new(&ns);
    let metadata_iptables = Iptables::new(host.clone(), state.path().join("locks"));
    metadata::ensure_dnat(&metadata_iptables, ip("10.9.0.1"), 8775)
        .await
        .expect("metadata DNAT");
    let metadata_rule = "-A stratus-metadata -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.0.1:8775";

    let manager = start(state.path(), host.clone()).await;
    // Nothing mapped: nothing made.
    assert!(
        !ns.try_run("ip", &["link", "show", "stratus-pub"]).0,
        "the interface was made with nothing to map"
    );
    let (a, b, late) = (InstanceId::new(), InstanceId::new(), InstanceId::new());
    let mut fixed = Vec::new();
    for (id, mac) in [(a, "02:16:3e:00:07:01"), (b, "02:16:3e:00:07:02")] {
        let got = manager
            .allocate_fixed_ip(&fixtures::allocate_fixed_ip(id, "p", mac))
            .await
            .expect("allocate");
        fixed.push(got.address);
    }
    let (fixed_a, fixed_b) = (fixed[0].as_str(), fixed[1].as_str());

    manager
        .map_public_addresses(&set("172.24.4.10", a, 10))
        .await
        .expect("map");
    let table = nat(&ns);
    assert!(table.contains(&dnat("172.24.4.10", fixed_a)), "{table}");
    assert!(
        table.contains(&format!(
            "-A stratus-pub-out -d 172.24.4.10/32 -j DNAT --to-destination {fixed_a}"
        )),
        "{table}"
    );
    assert!(table.contains(&snat("172.24.4.10", fixed_a)), "{table}");
    for jump in [
        "-A PREROUTING -j stratus-pub-pre",
        "-A OUTPUT -j stratus-pub-out",
        "-A POSTROUTING -j stratus-pub-snat",
    ] {
        assert_eq!(table.matches(jump).count(), 1, "{jump} in {table}");
    }
    assert!(table.contains(metadata_rule), "{table}");
    assert!(bound(&ns).contains("inet 172.24.4.10/32"), "{}", bound(&ns));
    let link = ns.run("ip", &["-d", "link", "show", "stratus-pub"]);
    assert!(
        (link.contains("dummy") || link.contains("bridge")) && link.contains("UP"),
        "{link}"
    );
    let routes = ns.run("ip", &["route", "show", "172.24.4.0/24"]);
    assert!(routes.contains("dev stratus-pub"), "{routes}");

    // A mapping whose instance has no fixed IP yet waits for one.
    manager
        .map_public_addresses(&set("172.24.4.11", late, 11))
        .await
        .expect("map");
    assert!(!nat(&ns).contains("172.24.4.11"), "{}", nat(&ns));
    assert!(!bound(&ns).contains("172.24.4.11"), "{}", bound(&ns));
    let got = manager
        .allocate_fixed_ip(&fixtures::allocate_fixed_ip(late, "p", "02:16:3e:00:07:03"))
        .await
        .expect("allocate");
    let fixed_late = got.address;
    assert!(
        nat(&ns).contains(&dnat("172.24.4.11", &fixed_late)),
        "{}",
        nat(&ns)
    );
    assert!(bound(&ns).contains("inet 172.24.4.11/32"), "{}", bound(&ns));

    // A re-map is the NAT alone: one restore, the address stays bound.
    host.take();
    manager
        .map_public_addresses(&set("172.24.4.10", b, 12))
        .await
        .expect("remap");
    let calls = host.take();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("iptables-restore"))
            .count(),
        1,
        "{calls:#?}"
    );
    assert!(!calls.iter().any(|c| c.contains("addr del")), "{calls:#?}");
    let table = nat(&ns);
    assert!(table.contains(&dnat("172.24.4.10", fixed_b)), "{table}");
    assert!(table.contains(&snat("172.24.4.10", fixed_b)), "{table}");
    assert!(!table.contains(&snat("172.24.4.10", fixed_a)), "{table}");

    // A restart: the second controller re-applies from its database without
    // ever flushing or unbinding (the table already holds it all).
    manager.ipam().store().close().await;
    drop(manager);
    let before = nat(&ns);
    let restarted_host = Recording::new(&ns);
    let restarted = start(state.path(), restarted_host.clone()).await;
    let calls = restarted_host.take();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("iptables-restore") || c.contains("addr del")),
        "{calls:#?}"
    );
    assert_eq!(nat(&ns), before);
    let addresses = bound(&ns);
    assert!(
        addresses.contains("inet 172.24.4.10/32") && addresses.contains("inet 172.24.4.11/32"),
        "{addresses}"
    );

    // Releasing a fixed IP unrenders its mapping (kept in the replica).
    restarted
        .release_fixed_ip(&stratus_rpc::wire::network::ReleaseFixedIp { instance_id: late })
        .await
        .expect("release");
    assert!(!nat(&ns).contains("172.24.4.11"), "{}", nat(&ns));
    assert!(!bound(&ns).contains("172.24.4.11"), "{}", bound(&ns));

    // Clearing everything removes every rule, jump and address of ours, and
    // only those.
    let clear = MapPublicAddresses {
        set: Vec::new(),
        clear: vec![ip("172.24.4.10"), ip("172.24.4.11")],
        sequence: 13,
    };
    restarted.map_public_addresses(&clear).await.expect("clear");
    let table = nat(&ns);
    assert!(!table.contains("stratus-pub"), "{table}");
    assert!(table.contains(metadata_rule), "{table}");
    assert!(
        table.contains("-A PREROUTING -j stratus-metadata"),
        "{table}"
    );
    assert!(!bound(&ns).contains("172.24.4."), "{}", bound(&ns));
    restarted.ipam().store().close().await;
}
