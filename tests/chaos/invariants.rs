//! The invariants after the last restart, each read from outside the
//! services: libvirt, the network database and DHCP files, iptables in
//! the guests' namespace, the compute host's folders, loop devices and
//! processes, libvirt's per-domain QEMU logs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use stratus_test_support::process::command_lines;

use crate::describe::Instance;
use crate::load::LoadCounts;
use crate::site::View;

/// One invariant and what broke it (empty: it held).
#[derive(Debug)]
pub struct Check {
    /// What must hold, as the report prints it.
    pub name: &'static str,
    /// Each violation, with the instance or object it concerns.
    pub violations: Vec<String>,
}

fn check(name: &'static str, violations: Vec<String>) -> Check {
    Check { name, violations }
}

/// Every instance running or terminated, a terminated one with a reason.
pub fn states(instances: &[Instance]) -> Vec<Check> {
    let unsettled = instances
        .iter()
        .filter(|i| i.state != "running" && i.state != "terminated")
        .map(|i| format!("{} is {} ({:?})", i.id, i.state, i.reason))
        .collect();
    let reasonless = instances
        .iter()
        .filter(|i| i.state == "terminated" && i.reason.is_none())
        .map(|i| format!("{} terminated without a state reason", i.id))
        .collect();
    vec![
        check("instance neither running nor terminated", unsettled),
        check("terminated without a state reason", reasonless),
    ]
}

/// Guests the harness saw running that ended without being asked to.
pub fn lost(instances: &[Instance], load: &LoadCounts) -> Check {
    let lost = instances
        .iter()
        .filter(|i| load.seen_running.contains(&i.id) && !load.terminated_by_us.contains(&i.id))
        .filter(|i| i.state != "running")
        .map(|i| format!("{} ran, now {} ({:?})", i.id, i.state, i.reason))
        .collect();
    check("guest lost (ran, ended unasked)", lost)
}

/// What the host holds for no running instance, or lacks for one.
pub async fn leaks(view: &View, instances: &[Instance]) -> Vec<Check> {
    let running: Vec<&Instance> = instances.iter().filter(|i| i.state == "running").collect();
    let ids: BTreeSet<&str> = running.iter().map(|i| i.id.as_str()).collect();
    let domains: BTreeSet<String> = running.iter().map(|i| i.domain()).collect();
    let chains: BTreeSet<String> = running.iter().map(|i| i.chain()).collect();
    let state_of = |id: &str| {
        instances
            .iter()
            .find(|i| i.id == id)
            .map_or("unknown to the API".to_owned(), |i| i.state.clone())
    };
    let mut checks = vec![
        check(
            "libvirt domain without a running instance",
            unexpected(virsh_list(view, true), |d| {
                (!domains.contains(&d))
                    .then(|| format!("{d} ({})", state_of(&d.replace("instance-", "i-"))))
            }),
        ),
        check(
            "running instance without a running domain",
            match virsh_list(view, false) {
                Ok(up) => running
                    .iter()
                    .filter(|i| !up.contains(&i.domain()))
                    .map(|i| i.id.clone())
                    .collect(),
                Err(why) => vec![why],
            },
        ),
    ];
    checks.push(fixed_ips(view, &running, &state_of).await);
    checks.push(check(
        "firewall chain without a running instance",
        unexpected(firewall_chains(view), |c| {
            (!chains.contains(&c)).then_some(c)
        }),
    ));
    checks.push(check(
        "dnsmasq host entry without a running instance",
        dhcp_hosts(&view.network_state)
            .into_iter()
            .filter(|line| !ids.iter().any(|id| line.contains(&format!(",{id},"))))
            .collect(),
    ));
    checks.push(check(
        "disk overlay (instance folder) without a running instance",
        instance_folders(&view.compute_state)
            .into_iter()
            .filter(|f| !domains.contains(f))
            .map(|f| format!("{f} ({})", state_of(&f.replace("instance-", "i-"))))
            .collect(),
    ));
    checks.push(check(
        "loop device left",
        unexpected(loop_devices(view), Some),
    ));
    checks.push(check(
        "qemu-storage-daemon / qemu-nbd left",
        storage_daemons(view),
    ));
    checks
}

/// Addresses allocated to no running instance, and running instances
/// whose allocation is missing or differs from what the API shows.
async fn fixed_ips(view: &View, running: &[&Instance], state_of: &dyn Fn(&str) -> String) -> Check {
    let url = format!(
        "sqlite://{}?mode=ro",
        view.network_state.join("network.sqlite").display()
    );
    let mut held: Vec<(String, String)> = Vec::new();
    let mut problems = Vec::new();
    match stratus_network::ipam::store::Store::connect(&url).await {
        Ok(store) => match store.networks().await {
            Ok(networks) => {
                for net in networks {
                    match store.dhcp_hosts(net.slot).await {
                        Ok(hosts) => held.extend(
                            hosts
                                .into_iter()
                                .map(|(_, host, ip)| (host, ip.to_string())),
                        ),
                        Err(e) => problems.push(format!("reading allocations: {e}")),
                    }
                }
            }
            Err(e) => problems.push(format!("reading networks: {e}")),
        },
        Err(e) => problems.push(format!("opening {url}: {e}")),
    }
    for (holder, ip) in &held {
        if !running.iter().any(|i| &i.id == holder) {
            problems.push(format!("{ip} held by {holder} ({})", state_of(holder)));
        }
    }
    for i in running {
        let mine: Vec<&String> = held
            .iter()
            .filter(|(h, _)| h == &i.id)
            .map(|(_, ip)| ip)
            .collect();
        if mine.len() != 1 || i.address.as_ref() != mine.first().copied() {
            problems.push(format!(
                "{} shows {:?}, the network holds {mine:?} for it",
                i.id, i.address
            ));
        }
    }
    check("fixed IP not matching a running instance", problems)
}

/// The violations `judge` finds among `listed`, or why it could not be listed.
fn unexpected<T>(
    listed: Result<impl IntoIterator<Item = T>, String>,
    judge: impl Fn(T) -> Option<String>,
) -> Vec<String> {
    match listed {
        Ok(items) => items.into_iter().filter_map(judge).collect(),
        Err(why) => vec![why],
    }
}

/// Domain names in the private libvirtd: every one, or the running ones.
fn virsh_list(view: &View, all: bool) -> Result<BTreeSet<String>, String> {
    let uri = view.uri();
    let mut args = vec!["-q", "-c", uri.as_str(), "list", "--name"];
    if all {
        args.push("--all");
    }
    Ok(lines_of(Command::new("virsh").args(&args))?
        .into_iter()
        .collect())
}

/// `stratus-inst-…` chains in the guests' namespace.
fn firewall_chains(view: &View) -> Result<Vec<String>, String> {
    let lines = lines_of(Command::new("ip").args(["netns", "exec", &view.netns, "iptables-save"]))?;
    Ok(lines
        .into_iter()
        .filter_map(|l| {
            let chain = l.strip_prefix(':')?.split_whitespace().next()?.to_owned();
            chain.starts_with("stratus-inst-").then_some(chain)
        })
        .collect())
}

/// The lines of every network's DHCP hosts file
/// (`<state>/networks/<net>/<…>/hosts`).
fn dhcp_hosts(network_state: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for net in read_dir(&network_state.join("networks")) {
        for sub in read_dir(&net) {
            if let Ok(text) = std::fs::read_to_string(sub.join("hosts")) {
                lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
            }
        }
    }
    lines
}

fn instance_folders(compute_state: &Path) -> Vec<String> {
    read_dir(&compute_state.join("instances"))
        .into_iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .filter(|n| n.starts_with("instance-"))
        .collect()
}

/// `losetup -a` lines of devices on files under the compute host's state.
fn loop_devices(view: &View) -> Result<Vec<String>, String> {
    let root = view.compute_state.display().to_string();
    Ok(lines_of(Command::new("losetup").arg("-a"))?
        .into_iter()
        .filter(|l| l.contains(&root))
        .collect())
}

/// Storage daemons serving a disk under the compute host's state.
fn storage_daemons(view: &View) -> Vec<String> {
    let root = view.compute_state.display().to_string();
    command_lines()
        .into_iter()
        .filter(|(_, line)| {
            (line.starts_with("qemu-storage-daemon")
                || line.contains("/qemu-storage-daemon ")
                || line.contains("qemu-nbd"))
                && line.contains(&root)
        })
        .map(|(pid, line)| format!("pid {pid}: {line}"))
        .collect()
}

/// Instances whose guest libvirt started more than once: the QEMU log of
/// its domain has a "starting up" line per start.
pub fn built_twice(view: &View) -> Check {
    let mut twice = Vec::new();
    for log in read_dir(&view.libvirt_dir.join("log/qemu")) {
        let Some(name) = log.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(domain) = name.strip_suffix(".log") else {
            continue;
        };
        let starts = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("starting up"))
            .count();
        if starts > 1 {
            twice.push(format!(
                "{} started {starts} times ({})",
                domain.replace("instance-", "i-"),
                log.display()
            ));
        }
    }
    check("instance built (its guest started) more than once", twice)
}

fn read_dir(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The non-empty output lines of `command`, which must succeed (else
/// what went wrong: a listing that failed must not pass for an empty one).
fn lines_of(command: &mut Command) -> Result<Vec<String>, String> {
    let out = command
        .output()
        .map_err(|e| format!("{command:?} does not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
