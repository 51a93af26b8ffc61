//! `stratus bench firewall`: whole-table firewall applies on real iptables
//! (in a scratch network namespace), and concurrent fixed IP allocations
//! through the RPC layer.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use stratus_rpc::clients::NetworkClient;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec};
use stratus_rpc::wire::ids::{InstanceId, MacAddress, SecurityGroupId};
use stratus_rpc::wire::network::AllocateFixedIp;
use stratus_rpc::{RequestContext, RpcClient, Transport};

use stratus_host::firewall::render::{
    Existing, FirewallState, GroupFilter, InstanceFilter, port_device, render,
};
use stratus_host::firewall::{Firewall, antispoof};
use stratus_host::iptables::Iptables;
use stratus_host::nft::Nft;
use stratus_host::{HostCommands, RealHost};
use stratus_network::config::{ManagerKind, NetworkConfig};
use stratus_network::manager::NetworkManager;
use stratus_network::service::NetworkService;

use super::BenchError;
use super::guest::ScratchNetns;
use super::stats::{Figures, Spread, ms, ratios};

/// Sizes of `stratus bench firewall`.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Concurrent allocate_fixed_ip calls.
    #[arg(long, default_value_t = 1000)]
    pub allocations: usize,
}

super::error::bench_steps!("firewall");

/// Rounds per size; the median and the range are printed.
const ROUNDS: usize = 7;

/// A host with `n` instances, each in two of 10 groups of three rules, one
/// group admitting another as a source.
fn state(n: usize) -> FirewallState {
    let groups: Vec<SecurityGroupId> = (0..10)
        .filter_map(|g| format!("sg-{g:017x}").parse().ok())
        .collect();
    let rule = |protocol: &str,
                from: i32,
                to: i32,
                cidr: Option<&str>,
                group: Option<&SecurityGroupId>| {
        IngressRule::try_from(RuleSpec {
            protocol: protocol.into(),
            from_port: Some(from),
            to_port: Some(to),
            cidr: cidr.map(Into::into),
            source_group: group.map(ToString::to_string),
        })
        .ok()
    };
    let mut state = FirewallState::default();
    for (i, group) in groups.iter().enumerate() {
        let rules = [
            rule("tcp", 22, 22, Some("0.0.0.0/0"), None),
            rule("tcp", 8000, 8100, Some("10.0.0.0/8"), None),
            rule("tcp", 5432, 5432, None, groups.get((i + 1) % groups.len())),
        ];
        state.groups.insert(
            group.clone(),
            GroupFilter {
                rules: rules.into_iter().flatten().collect(),
                egress: vec![IngressRule::allow_all()],
                members: (0..5).map(|m| Ipv4Addr::new(10, 9, i as u8, m)).collect(),
            },
        );
    }
    let mut instances = BTreeMap::new();
    for i in 0..n {
        let octets = (i as u32 + 3).to_be_bytes();
        let id = InstanceId::new();
        let mac = format!(
            "02:16:3e:{:02x}:{:02x}:{:02x}",
            octets[1], octets[2], octets[3]
        );
        let Ok(mac) = mac.parse::<MacAddress>() else {
            continue;
        };
        let filter = InstanceFilter {
            address: Ipv4Addr::new(10, 0, octets[2], octets[3]),
            mac,
            device: port_device(&id),
            dhcp_server: Ipv4Addr::new(10, 0, 0, 2),
            groups: vec![groups[i % 10].clone(), groups[(i + 3) % 10].clone()],
            source_dest_check: true,
        };
        instances.insert(id, filter);
    }
    state.instances = instances;
    state
}

/// Prints the apply times and the allocation figures.
pub async fn run(options: &Options) -> Result<(), BenchError> {
    let allocations = options.allocations;
    let netns = ScratchNetns::add(
        "firewall",
        format!(
            "stratus-bench-{}",
            &InstanceId::new().0.simple().to_string()[..8]
        ),
    )?;
    let scratch = tempfile_dir()?;
    apply_times(&netns, &scratch).await?;
    allocation_rate(&scratch, allocations).await?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// The three ways of applying a host's firewall, in a namespace of their
/// own.
struct Appliers {
    iptables: Iptables,
    nft: Nft,
    firewall: Arc<Firewall>,
}

impl Appliers {
    async fn clear(&self) -> Result<(), BenchError> {
        self.firewall
            .replace(FirewallState::default())
            .await
            .map_err(fail("clear"))
    }

    /// One round for `n` instances: (filter, bridge, both), each applied
    /// on an empty table.
    async fn round(&self, n: usize) -> Result<[Duration; 3], BenchError> {
        let wanted = state(n);
        self.clear().await?;
        let started = Instant::now();
        self.iptables
            .update(|saved| Some(render(&wanted, &Existing::parse(saved))))
            .await
            .map_err(fail("filter apply"))?;
        let filter = started.elapsed();
        self.clear().await?;
        let started = Instant::now();
        self.nft
            .apply(&antispoof::render(&wanted.instances, &[]))
            .await
            .map_err(fail("bridge apply"))?;
        let bridge = started.elapsed();
        self.clear().await?;
        let started = Instant::now();
        self.firewall.replace(wanted).await.map_err(fail("apply"))?;
        Ok([filter, bridge, started.elapsed()])
    }
}

/// Whole-table applies for 1, 100 and 1000 instances; prints each size.
async fn apply_times(netns: &ScratchNetns, scratch: &Path) -> Result<(), BenchError> {
    let host: Arc<dyn HostCommands> = Arc::new(RealHost::in_netns(netns.name()));
    let iptables = Iptables::new(host.clone(), scratch.to_path_buf());
    let nft = Nft::new(host);
    let firewall = Firewall::new(iptables.clone(), Some(nft.clone()), None, Vec::new());
    let appliers = Appliers {
        iptables,
        nft,
        firewall,
    };
    println!(
        "firewall apply, in a scratch namespace, median of {ROUNDS} rounds (min-max); each round times, in turn:"
    );
    println!("  filter = the iptables chains alone (one iptables-restore)");
    println!("  bridge = the anti-spoofing bridge table alone (one nft -f)");
    println!("  both   = the host firewall as a worker applies it (bridge, then filter)");
    for n in [1usize, 100, 1000] {
        let (mut filter, mut bridge, mut both) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let [f, b, fb] = appliers.round(n).await?;
            filter.push(f);
            bridge.push(b);
            both.push(fb);
        }
        let lines = filter_rules(netns.name())?;
        println!("  {n:>5} instances ({lines} filter rules):");
        println!("        filter {}", Spread::ms(&filter));
        println!("        bridge {}", Spread::ms(&bridge));
        println!("        both   {}", Spread::ms(&both));
        println!(
            "        bridge / filter {}   both / filter {}",
            Spread::ratio(&ratios(&bridge, &filter)),
            Spread::ratio(&ratios(&both, &filter))
        );
    }
    appliers.clear().await
}

/// The stratus rules in the namespace's filter table.
fn filter_rules(netns: &str) -> Result<usize, BenchError> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "iptables-save", "-t", "filter"])
        .output()
        .map_err(fail("iptables-save"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A stratus"))
        .count())
}

/// `allocations` concurrent allocate_fixed_ip calls through the RPC layer;
/// prints their figures.
async fn allocation_rate(scratch: &Path, allocations: usize) -> Result<(), BenchError> {
    let config = NetworkConfig {
        manager: ManagerKind::Vlan,
        dhcp: false,
        ..NetworkConfig::default()
    };
    let manager = NetworkManager::start(&config, scratch, Arc::new(RealHost::new()))
        .await
        .map_err(fail("network manager"))?;
    let bus = MemoryTransport::new(64, Duration::from_millis(100));
    let service = Arc::new(NetworkService::new(Arc::new(manager)));
    let serving = bus
        .serve("network", None, service)
        .await
        .map_err(fail("serve"))?;
    let client = NetworkClient::new(RpcClient::new(
        Arc::new(bus.clone()),
        Duration::from_secs(120),
    ));
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..allocations {
        let client = client.clone();
        calls.spawn(async move { allocate(&client, i).await });
    }
    let mut latencies = Vec::with_capacity(allocations);
    while let Some(done) = calls.join_next().await {
        latencies.push(done.map_err(fail("task"))??);
    }
    let total = started.elapsed();
    serving.stop().await;
    let figures = Figures::from(latencies, total);
    println!(
        "{allocations} concurrent allocate_fixed_ip (SQLite, in-process RPC, 4 projects): {:.0} ms total, {:.0} allocations/s, p50 {:.1} ms, p99 {:.1} ms",
        ms(total),
        figures.rate,
        ms(figures.p50),
        ms(figures.p99)
    );
    Ok(())
}

/// One allocation for the `i`th caller; how long it took.
async fn allocate(client: &NetworkClient, i: usize) -> Result<Duration, BenchError> {
    let request = AllocateFixedIp {
        instance_id: InstanceId::new(),
        project_id: format!("bench{}", i % 4).parse().map_err(fail("project"))?,
        mac: "02:16:3e:00:00:01".parse().map_err(fail("mac"))?,
        deadline_ms: None,
        requested_address: None,
    };
    let t = Instant::now();
    client
        .allocate_fixed_ip(&RequestContext::system(), &request)
        .await
        .map_err(fail("allocate_fixed_ip"))?;
    Ok(t.elapsed())
}

fn tempfile_dir() -> Result<std::path::PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("stratus-bench-{}", InstanceId::new().0.simple()));
    std::fs::create_dir_all(&dir).map_err(fail("scratch dir"))?;
    Ok(dir)
}
