//! `stratus bench scheduler`: placement decisions per second for many
//! instances over many simulated hosts with the filter driver, first in the
//! placer alone, then end to end through the scheduler's RPC handler on the
//! in-process bus (decode, place, cast to `compute.<host>`, delivered).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args;
use serde_json::value::RawValue;
use stratus_rpc::clients::SchedulerClient;
use stratus_rpc::handler::{decode_args, null};
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::compute::{Flavor, RunInstance};
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::wire::scheduler::{HostReport, ScheduleRunInstances};
use stratus_rpc::{Handler, HandlerError, RequestContext, RpcClient, ServerHandle, Transport};

use stratus_scheduler::config::{DriverKind, SchedulerConfig};
use stratus_scheduler::placer::Placer;
use stratus_scheduler::request::RequestSpec;
use stratus_scheduler::service::SchedulerService;

use super::BenchError;
use super::guest::{disk_image, request};
use super::stats::{ms, quantile, rate};

/// Sizes of `stratus bench scheduler`.
#[derive(Debug, Clone, Copy, Args)]
pub struct Options {
    /// Simulated compute hosts.
    #[arg(long, default_value_t = 1000)]
    pub hosts: usize,
    /// Instances to place.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// Instances per run_instance request.
    #[arg(long, default_value_t = 100)]
    pub per_request: usize,
}

super::error::bench_steps!("scheduler");

const FLAVORS: [(&str, u32, u64, u64); 4] = [
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
];

/// Hosts in three zones, some already busy, one in fifty disabled.
fn hosts(n: usize) -> Result<Vec<HostReport>, BenchError> {
    (0..n)
        .map(|i| {
            let host: HostName = format!("compute-{i:05}")
                .parse()
                .map_err(fail("host name"))?;
            let busy = (i % 7) as u64;
            Ok(HostReport {
                host,
                availability_zone: format!("zone-{}", i % 3),
                vcpus: 32,
                vcpus_used: (busy * 2) as u32,
                memory_mb: 128 * 1024,
                memory_mb_used: busy * 4096,
                disk_gb: 2000,
                disk_gb_used: busy * 40,
                running_instances: busy as u32,
                hypervisor_type: "kvm".into(),
                architecture: std::env::consts::ARCH.into(),
                enabled: i % 50 != 49,
                disabled_reason: None,
            })
        })
        .collect()
}

/// Instances of mixed flavors; every tenth asks for a zone.
fn instances(n: usize) -> Result<Vec<RunInstance>, BenchError> {
    (0..n)
        .map(|i| {
            let (name, vcpus, memory_mb, root_gb) = FLAVORS[i % FLAVORS.len()];
            let flavor = Flavor {
                name: name.into(),
                vcpus,
                memory_mb,
                root_gb,
            };
            let image = disk_image(
                "ami-0000000000000001",
                Path::new("/var/lib/stratus/images/bench.qcow2"),
            );
            let mut instance = request("scheduler", flavor, image)?;
            if i % 10 == 0 {
                instance.placement.availability_zone = Some(format!("zone-{}", i % 3));
            }
            Ok(instance)
        })
        .collect()
}

/// Counts the instances cast to each simulated host.
#[derive(Debug, Default)]
struct Landed {
    total: AtomicUsize,
    per_host: Mutex<HashMap<String, usize>>,
}

impl Landed {
    /// Waits until `expected` instances landed or `deadline` passes; how
    /// many did.
    async fn wait_for(&self, expected: usize, deadline: Instant) -> usize {
        while self.total.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.total.load(Ordering::Relaxed)
    }

    /// Instances per host that got any, smallest first.
    fn counts(&self) -> Vec<usize> {
        let per_host = self.per_host.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<usize> = per_host.values().copied().collect();
        counts.sort_unstable();
        counts
    }
}

#[derive(Debug)]
struct FakeHost {
    name: String,
    landed: Arc<Landed>,
}

#[async_trait]
impl Handler for FakeHost {
    async fn handle(
        &self,
        _: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        let _: RunInstance = decode_args(method, args)?;
        *self
            .landed
            .per_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.name.clone())
            .or_default() += 1;
        self.landed.total.fetch_add(1, Ordering::Relaxed);
        Ok(null())
    }
}

/// Runs both measurements and prints their figures; the last line ends in
/// `<n> decisions/s`.
pub async fn run(config: &SchedulerConfig, options: Options) -> Result<(), BenchError> {
    let config = SchedulerConfig {
        driver: DriverKind::Filter,
        ..config.clone()
    };
    let reports = hosts(options.hosts)?;
    println!(
        "filter scheduler: {} hosts, {} instances ({} per request), filters {:?}, weigher {:?}",
        options.hosts, options.instances, options.per_request, config.filters, config.weigher
    );
    placer_alone(&config, &reports, options.instances)?;
    through_rpc(&config, &reports, options).await
}

/// The placer alone: what one decision costs.
fn placer_alone(
    config: &SchedulerConfig,
    reports: &[HostReport],
    instances: usize,
) -> Result<(), BenchError> {
    let placer = Placer::new(config);
    let now = Instant::now();
    for report in reports {
        placer.update_host(report.clone(), now);
    }
    let batch = self::instances(instances)?;
    let started = Instant::now();
    let mut failed = 0usize;
    for instance in &batch {
        let spec = RequestSpec::new(instance, false).map_err(fail("request spec"))?;
        if placer.place(&spec, now).is_err() {
            failed += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "placer alone: {} placed, {failed} without a host, in {:.1} ms: {:.0} decisions/s",
        batch.len() - failed,
        ms(took),
        rate(batch.len(), took)
    );
    Ok(())
}

/// End to end on the in-process bus: a fake compute host per report and
/// the scheduler's RPC handler, told about every host before the batch.
async fn through_rpc(
    config: &SchedulerConfig,
    reports: &[HostReport],
    options: Options,
) -> Result<(), BenchError> {
    let bus = MemoryTransport::new(64, Duration::from_millis(100));
    let rpc = RpcClient::new(Arc::new(bus.clone()), Duration::from_secs(30));
    let landed = Arc::new(Landed::default());
    let mut serving = serve_hosts(&bus, reports, &landed).await?;
    let service = Arc::new(SchedulerService::new(config, rpc.clone()));
    serving.push(
        bus.serve("scheduler", None, service.clone())
            .await
            .map_err(fail("serving the scheduler"))?,
    );
    let client = SchedulerClient::new(rpc);
    let ctx = RequestContext::system();
    for report in reports {
        client
            .update_host(&ctx, report)
            .await
            .map_err(fail("report"))?;
    }
    while service.placer().hosts(Instant::now()).len() < reports.len() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let batch = instances(options.instances)?;
    let expected = batch.len();
    let started = Instant::now();
    for chunk in batch.chunks(options.per_request.max(1)) {
        let request = ScheduleRunInstances {
            instances: chunk.to_vec(),
        };
        client
            .run_instance(&ctx, &request)
            .await
            .map_err(fail("run_instance"))?;
    }
    let total = landed
        .wait_for(expected, started + Duration::from_secs(300))
        .await;
    let took = started.elapsed();
    for server in serving {
        server.stop().await;
    }
    if total < expected {
        return Err(BenchError::new(
            "scheduler",
            format!("only {total} of {expected} instances reached a host in 300 s"),
        ));
    }
    let per_host = landed.counts();
    println!(
        "spread: {} hosts got instances, {}..{} each (median {})",
        per_host.len(),
        per_host.first().copied().unwrap_or(0),
        per_host.last().copied().unwrap_or(0),
        quantile(&per_host, 0.5),
    );
    println!(
        "through RPC (decode, place, cast to compute.<host>, delivered): {expected} instances in {:.1} ms: {:.0} decisions/s",
        ms(took),
        rate(expected, took)
    );
    Ok(())
}

/// Serves a fake compute host on `compute.<host>` for each report.
async fn serve_hosts(
    bus: &MemoryTransport,
    reports: &[HostReport],
    landed: &Arc<Landed>,
) -> Result<Vec<ServerHandle>, BenchError> {
    let mut serving = Vec::with_capacity(reports.len() + 1);
    for report in reports {
        let handler = Arc::new(FakeHost {
            name: report.host.to_string(),
            landed: landed.clone(),
        });
        serving.push(
            bus.serve("compute", Some(&report.host), handler)
                .await
                .map_err(fail("serving a host"))?,
        );
    }
    Ok(serving)
}
