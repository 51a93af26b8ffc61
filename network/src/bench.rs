//! `stratus bench firewall`: whole-table firewall applies on real iptables
//! (in a scratch network namespace), and concurrent fixed IP allocations
//! through the RPC layer.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_rpc::clients::NetworkClient;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec};
use stratus_rpc::wire::ids::{InstanceId, MacAddress, SecurityGroupId};
use stratus_rpc::wire::network::AllocateFixedIp;
use stratus_rpc::{RequestContext, RpcClient, Transport};

use crate::config::{ManagerKind, NetworkConfig};
use crate::manager::NetworkManager;
use crate::service::NetworkService;
use stratus_host::firewall::render::{
    Existing, FirewallState, GroupFilter, InstanceFilter, port_device, render,
};
use stratus_host::firewall::{Firewall, antispoof};
use stratus_host::iptables::Iptables;
use stratus_host::nft::Nft;
use stratus_host::{HostCommands, RealHost};

/// A benchmark step failed.
#[derive(Debug, thiserror::Error)]
#[error("bench firewall: {0}")]
pub struct BenchError(String);

fn fail(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> BenchError + '_ {
    move |e| BenchError(format!("{what}: {e}"))
}

/// Removes the scratch namespace however the run ends.
struct ScratchNetns(String);

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

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
        };
        instances.insert(id, filter);
    }
    state.instances = instances;
    state
}

/// Prints the apply times and the allocation figures.
pub async fn run(allocations: usize) -> Result<(), BenchError> {
    let name = format!(
        "stratus-bench-{}",
        &InstanceId::new().0.simple().to_string()[..8]
    );
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map_err(|e| fail("ip netns add")(&e))?;
    if !status.success() {
        return Err(BenchError("creating a network namespace needs root".into()));
    }
    let _scratch = ScratchNetns(name.clone());
    let scratch = tempfile_dir()?;
    let host: Arc<dyn HostCommands> = Arc::new(RealHost::in_netns(&name));
    let iptables = Iptables::new(host.clone(), scratch.clone());
    let nft = Nft::new(host);
    let firewall = Firewall::new(iptables.clone(), Some(nft.clone()), None);
    let clear = || async {
        firewall
            .replace(FirewallState::default())
            .await
            .map_err(|e| fail("clear")(&e))
    };

    println!(
        "firewall apply, in a scratch namespace, median of 7 rounds (min-max); each round times, in turn:"
    );
    println!("  filter = the iptables chains alone (one iptables-restore)");
    println!("  bridge = the anti-spoofing bridge table alone (one nft -f)");
    println!("  both   = the host firewall as a worker applies it (bridge, then filter)");
    for n in [1usize, 100, 1000] {
        let (mut filter, mut bridge, mut both) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..7 {
            let wanted = state(n);
            clear().await?;
            let started = Instant::now();
            iptables
                .update(|saved| Some(render(&wanted, &Existing::parse(saved))))
                .await
                .map_err(|e| fail("filter apply")(&e))?;
            filter.push(started.elapsed());
            clear().await?;
            let started = Instant::now();
            nft.apply(&antispoof::render(&wanted.instances))
                .await
                .map_err(|e| fail("bridge apply")(&e))?;
            bridge.push(started.elapsed());
            clear().await?;
            let started = Instant::now();
            firewall
                .replace(wanted)
                .await
                .map_err(|e| fail("apply")(&e))?;
            both.push(started.elapsed());
        }
        let lines = {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &name, "iptables-save", "-t", "filter"])
                .output()
                .map_err(|e| fail("iptables-save")(&e))?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("-A stratus"))
                .count()
        };
        let ratio = |num: &[Duration]| {
            num.iter()
                .zip(&filter)
                .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
                .collect::<Vec<_>>()
        };
        println!("  {n:>5} instances ({lines} filter rules):");
        println!("        filter {}", spread_ms(&filter));
        println!("        bridge {}", spread_ms(&bridge));
        println!("        both   {}", spread_ms(&both));
        println!(
            "        bridge / filter {}   both / filter {}",
            spread(&ratio(&bridge)),
            spread(&ratio(&both))
        );
    }
    clear().await?;

    let config = NetworkConfig {
        manager: ManagerKind::Vlan,
        dhcp: false,
        ..NetworkConfig::default()
    };
    let manager = NetworkManager::start(&config, &scratch, Arc::new(RealHost::new()))
        .await
        .map_err(|e| fail("network manager")(&e))?;
    let bus = MemoryTransport::new(64, Duration::from_millis(100));
    let serving = bus
        .serve(
            "network",
            None,
            Arc::new(NetworkService::new(Arc::new(manager))),
        )
        .await
        .map_err(|e| fail("serve")(&e))?;
    let client = NetworkClient::new(RpcClient::new(
        Arc::new(bus.clone()),
        Duration::from_secs(120),
    ));
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..allocations {
        let client = client.clone();
        calls.spawn(async move {
            let request = AllocateFixedIp {
                instance_id: InstanceId::new(),
                project_id: format!("bench{}", i % 4)
                    .parse()
                    .map_err(|e| fail("project")(&e))?,
                mac: "02:16:3e:00:00:01".parse().map_err(|e| fail("mac")(&e))?,
                deadline_ms: None,
            };
            let t = Instant::now();
            client
                .allocate_fixed_ip(&RequestContext::system(), &request)
                .await
                .map_err(|e| fail("allocate_fixed_ip")(&e))?;
            Ok::<_, BenchError>(t.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(allocations);
    while let Some(done) = calls.join_next().await {
        latencies.push(done.map_err(|e| fail("task")(&e))??);
    }
    let total = started.elapsed();
    latencies.sort();
    serving.stop().await;
    println!(
        "{allocations} concurrent allocate_fixed_ip (SQLite, in-process RPC, 4 projects): {:.0} ms total, {:.0} allocations/s, p50 {:.1} ms, p99 {:.1} ms",
        ms(total),
        allocations as f64 / total.as_secs_f64(),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 99 / 100])
    );
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `median (min-max)` of ratios.
fn spread(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match (sorted.first(), sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(min), Some(median), Some(max)) => format!("{median:.2}x ({min:.2}-{max:.2})"),
        _ => "-".to_owned(),
    }
}

/// `median (min-max)` of durations, in milliseconds.
fn spread_ms(times: &[Duration]) -> String {
    let mut sorted: Vec<f64> = times.iter().map(|t| ms(*t)).collect();
    sorted.sort_by(f64::total_cmp);
    match (sorted.first(), sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(min), Some(median), Some(max)) => {
            format!("{median:>8.1} ms ({min:.1}-{max:.1})")
        }
        _ => "-".to_owned(),
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("stratus-bench-{}", InstanceId::new().0.simple()));
    std::fs::create_dir_all(&dir).map_err(|e| fail("scratch dir")(&e))?;
    Ok(dir)
}
