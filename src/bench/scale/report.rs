//! What a scale run prints: the load's outcome, and what `/proc` says each
//! process used while it ran (peak RSS; CPU, to show where the time went).

use std::time::Duration;

use crate::bench::stats::Figures;

use super::children::{self, Children, Usage};
use super::load::Outcome;
use super::{Options, workers};

/// One reading of every process of the run.
#[derive(Debug)]
pub struct Readings {
    api: Option<Usage>,
    scheduler: Option<Usage>,
    network: Option<Usage>,
    compute: Option<Usage>,
    hosting: Vec<Option<Usage>>,
    broker: Option<Usage>,
    client: Option<Usage>,
}

impl Readings {
    /// Reads the children (`hosting` names the worker processes), the
    /// broker when its pid is known, and this process.
    pub fn take(children: &Children, hosting: &[String], broker: Option<u32>) -> Self {
        Self {
            api: children.usage("api"),
            scheduler: children.usage("scheduler"),
            network: children.usage("network"),
            compute: children.usage("compute"),
            hosting: hosting.iter().map(|n| children.usage(n)).collect(),
            broker: broker.and_then(children::usage_of),
            client: children::usage_of(std::process::id()),
        }
    }
}

/// The file system type holding `dir`, as `findmnt` names it.
fn file_system(dir: &std::path::Path) -> String {
    std::process::Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "--target"])
        .arg(dir)
        .output()
        .ok()
        .filter(|out| out.status.success())
        // Mounts stacked on one point are listed in turn; the last is the
        // one in effect.
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().last().map(|l| l.trim().to_owned())
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "an unknown file system".to_owned())
}

/// The first lines: what runs, and where the workers write.
pub fn header(options: &Options, processes: usize, ready_in: Duration, dir: &std::path::Path) {
    let requests = options.instances.div_ceil(options.per_request.max(1));
    println!(
        "scale: {} compute workers (fake driver) over RabbitMQ, {requests} RunInstances ({} instance{} each), {} in flight",
        options.workers,
        options.per_request,
        if options.per_request == 1 { "" } else { "s" },
        options.concurrency
    );
    println!(
        "  services: api, scheduler, network, compute ({}), {} more workers in {processes} processes; ready in {:.1} s",
        workers::host_name(0),
        options.workers - 1,
        ready_in.as_secs_f64()
    );
    // Each build creates a handful of files: on a file system that has
    // deleted many lately, ext4's inode allocator alone can cost a third or
    // more of the rate (see README).
    println!(
        "  instance folders on {} under {} (TMPDIR moves them)",
        file_system(dir),
        dir.display()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(usage: Option<Usage>) -> String {
    usage.map_or("?".into(), |u| {
        format!("{:.0}", u.peak_rss_kib as f64 / 1024.0)
    })
}

/// CPU seconds used between two readings: the process's own, and its
/// ended children's.
fn cpu(before: Option<Usage>, after: Option<Usage>) -> (f64, f64) {
    match (before, after) {
        (Some(b), Some(a)) => (
            a.cpu_secs - b.cpu_secs,
            a.children_cpu_secs - b.children_cpu_secs,
        ),
        _ => (0.0, 0.0),
    }
}

/// The figures, the failures if any, and last the rate (a line ending
/// `instances/s`).
pub fn figures(options: &Options, outcome: &Outcome, before: &Readings, after: &Readings) {
    let elapsed = outcome.elapsed.max(Duration::from_millis(1));
    let round_trips = Figures::from(outcome.requests.clone(), elapsed);
    println!(
        "  RunInstances round trip: p50 {:.1} ms, p99 {:.1} ms",
        ms(round_trips.p50),
        ms(round_trips.p99)
    );
    let to_running = Figures::from(outcome.to_running.clone(), elapsed);
    println!(
        "time to running: p50 {:.0} ms, p99 {:.0} ms (request sent to first seen running, polled every {} ms)",
        ms(to_running.p50),
        ms(to_running.p99),
        options.poll_interval.as_millis()
    );
    println!(
        "peak RSS: api {} MiB, scheduler {} MiB, compute worker {} MiB (one of {})",
        mib(after.api),
        mib(after.scheduler),
        mib(after.compute),
        options.workers
    );
    let hosting: Vec<String> = after.hosting.iter().map(|u| mib(*u)).collect();
    println!(
        "  peak RSS: network {} MiB; worker processes {} MiB",
        mib(after.network),
        hosting.join(", ")
    );
    let (hosted, hosted_children) = before
        .hosting
        .iter()
        .zip(&after.hosting)
        .map(|(b, a)| cpu(*b, *a))
        .fold((0.0, 0.0), |(o, c), (own, ended)| (o + own, c + ended));
    let (compute, compute_children) = cpu(before.compute, after.compute);
    // On the fake driver, with no key to inject, qemu-img is all they run.
    let qemu_img = hosted_children + compute_children;
    let broker = match after.broker {
        Some(_) => format!("{:.1} s", cpu(before.broker, after.broker).0),
        None => "? (not found on this machine)".to_owned(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "  cpu during the load: api {:.1} s, scheduler {:.1} s, network {:.1} s, compute {compute:.1} s, other workers {:.1} s, qemu-img {qemu_img:.1} s, broker {broker}, bench client {:.1} s (of {cores} cores x {:.1} s)",
        cpu(before.api, after.api).0,
        cpu(before.scheduler, after.scheduler).0,
        cpu(before.network, after.network).0,
        hosted,
        cpu(before.client, after.client).0,
        elapsed.as_secs_f64(),
    );
    for e in outcome.failed_requests.iter().take(5) {
        println!("  failed request: {e}");
    }
    for (id, reason) in outcome.errors.iter().take(5) {
        println!("  failed instance {id}: {reason}");
    }
    if !outcome.failed_requests.is_empty() || !outcome.errors.is_empty() {
        println!(
            "  {} requests and {} instances failed",
            outcome.failed_requests.len(),
            outcome.errors.len()
        );
    }
    let running = outcome.to_running.len();
    println!(
        "{running} instances running in {:.2} s: {:.1} instances/s",
        elapsed.as_secs_f64(),
        running as f64 / elapsed.as_secs_f64()
    );
}
