//! `stratus bench scheduler`: placement decisions per second for many
//! instances over many simulated hosts with the filter driver, first in the
//! placer alone, then end to end through the scheduler's RPC handler on the
//! in-process bus (decode, place, cast to `compute.<host>`, delivered).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::value::RawValue;
use stratus_rpc::clients::SchedulerClient;
use stratus_rpc::handler::{decode_args, null};
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::compute::{Flavor, ImageRef, RunInstance};
use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::scheduler::{HostReport, ScheduleRunInstances};
use stratus_rpc::{Handler, HandlerError, RequestContext, RpcClient, ServerHandle, Transport};

use stratus_scheduler::config::{DriverKind, SchedulerConfig};
use stratus_scheduler::placer::Placer;
use stratus_scheduler::request::RequestSpec;
use stratus_scheduler::service::SchedulerService;

/// Sizes of the run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Simulated compute hosts.
    pub hosts: usize,
    /// Instances to place.
    pub instances: usize,
    /// Instances per `run_instance` request.
    pub per_request: usize,
}

/// A step of the benchmark failed.
#[derive(Debug, thiserror::Error)]
#[error("bench scheduler: {0}")]
pub struct BenchError(String);

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
                .map_err(|e| BenchError(format!("host name: {e}")))?;
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
            let mut instance = RunInstance {
                instance_id: InstanceId::new(),
                project_id: "bench"
                    .parse()
                    .map_err(|e| BenchError(format!("project: {e}")))?,
                flavor: Flavor {
                    name: name.into(),
                    vcpus,
                    memory_mb,
                    root_gb,
                },
                image: ImageRef {
                    id: "ami-0000000000000001".into(),
                    disk: "/var/lib/stratus/images/bench.qcow2".into(),
                    kernel: None,
                    ramdisk: None,
                    properties: Default::default(),
                },
                security_groups: vec![],
                key_data: None,
                key_name: None,
                user_data: None,
                reservation_id: None,
                placement: Default::default(),
            };
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

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
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

    // The placer alone: what one decision costs.
    let placer = Placer::new(&config);
    let now = Instant::now();
    for report in &reports {
        placer.update_host(report.clone(), now);
    }
    let batch = instances(options.instances)?;
    let started = Instant::now();
    let mut failed = 0usize;
    for instance in &batch {
        let spec = RequestSpec::new(instance, false).map_err(|e| BenchError(e.to_string()))?;
        if placer.place(&spec, now).is_err() {
            failed += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "placer alone: {} placed, {failed} without a host, in {:.1} ms: {:.0} decisions/s",
        batch.len() - failed,
        took.as_secs_f64() * 1e3,
        rate(batch.len(), took)
    );

    // End to end on the in-process bus.
    let bus = MemoryTransport::new(64, Duration::from_millis(100));
    let transport: Arc<dyn Transport> = Arc::new(bus.clone());
    let rpc = RpcClient::new(transport.clone(), Duration::from_secs(30));
    let landed = Arc::new(Landed::default());
    let mut serving: Vec<ServerHandle> = Vec::with_capacity(options.hosts + 1);
    for report in &reports {
        let handler = Arc::new(FakeHost {
            name: report.host.to_string(),
            landed: landed.clone(),
        });
        serving.push(
            bus.serve("compute", Some(&report.host), handler)
                .await
                .map_err(|e| BenchError(format!("serving a host: {e}")))?,
        );
    }
    let service = Arc::new(SchedulerService::new(&config, rpc.clone()));
    serving.push(
        bus.serve("scheduler", None, service.clone())
            .await
            .map_err(|e| BenchError(format!("serving the scheduler: {e}")))?,
    );
    let client = SchedulerClient::new(rpc);
    let ctx = RequestContext::system();
    for report in &reports {
        client
            .update_host(&ctx, report)
            .await
            .map_err(|e| BenchError(format!("report: {e}")))?;
    }
    while service.placer().hosts(Instant::now()).len() < reports.len() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let batch = instances(options.instances)?;
    let expected = batch.len();
    let started = Instant::now();
    for chunk in batch.chunks(options.per_request.max(1)) {
        client
            .run_instance(
                &ctx,
                &ScheduleRunInstances {
                    instances: chunk.to_vec(),
                },
            )
            .await
            .map_err(|e| BenchError(format!("run_instance: {e}")))?;
    }
    let deadline = started + Duration::from_secs(300);
    while landed.total.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    let total = landed.total.load(Ordering::Relaxed);
    let per_host: Vec<usize> = {
        let per_host = landed
            .per_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<usize> = per_host.values().copied().collect();
        counts.sort_unstable();
        counts
    };
    for server in serving {
        server.stop().await;
    }
    if total < expected {
        return Err(BenchError(format!(
            "only {total} of {expected} instances reached a host in 300 s"
        )));
    }
    println!(
        "spread: {} hosts got instances, {}..{} each (median {})",
        per_host.len(),
        per_host.first().copied().unwrap_or(0),
        per_host.last().copied().unwrap_or(0),
        per_host.get(per_host.len() / 2).copied().unwrap_or(0),
    );
    println!(
        "through RPC (decode, place, cast to compute.<host>, delivered): {expected} instances in {:.1} ms: {:.0} decisions/s",
        took.as_secs_f64() * 1e3,
        rate(expected, took)
    );
    Ok(())
}
