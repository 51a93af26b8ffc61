//! Assembling a compute worker from its configuration: driver, image cache,
//! firewall, bridges and clients, then recovery and periodic tasks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stratus_host::bridge::Bridges;
use stratus_host::firewall::Firewall;
use stratus_host::iptables::Iptables;
use stratus_host::isolation::{self, Gaps};
use stratus_host::nft::Nft;
use stratus_host::{FakeHost, HostCommands, RealHost};
use stratus_rpc::clients::{ConductorClient, NetworkClient, SchedulerClient};
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{RequestContext, RpcClient, Transport};
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::config::{ComputeConfig, DriverKind};
use crate::driver::fake::FakeDriver;
use crate::driver::libvirt::LibvirtDriver;
use crate::driver::{DriverError, VirtDriver};
use crate::host::qemu_img::RealQemuImg;
use crate::image_cache::ImageCache;
use crate::inject::GuestData;
use crate::manager::{ComputeManager, Parts};
use crate::service::ComputeService;

/// A running worker: its manager, its RPC handler, and what stops its tasks.
#[derive(Debug)]
pub struct Worker {
    /// The manager.
    pub manager: Arc<ComputeManager>,
    /// The handler to serve on `compute` and `compute.<host>`.
    pub service: Arc<ComputeService>,
    /// Cancels the periodic tasks.
    pub periodic: CancellationToken,
}

/// Where a worker keeps things and how it reaches the rest of the cloud.
pub struct WorkerSetup<'a> {
    /// This host.
    pub host: HostName,
    /// The state folder (`instances/` and locks go under it).
    pub state_dir: &'a Path,
    /// Compute settings.
    pub config: &'a ComputeConfig,
    /// The physical interface for VLANs (from `[network]`).
    pub vlan_interface: String,
    /// The bus.
    pub transport: Arc<dyn Transport>,
    /// How long calls wait.
    pub call_timeout: Duration,
    /// Host commands (bridges, iptables), in a namespace or not. Unset:
    /// the host's own, except on the fake driver, whose guests do not exist
    /// and so need no bridge or chain (a fake in memory instead).
    pub host_commands: Option<Arc<dyn HostCommands>>,
    /// A driver to use instead of the configured one (tests). A worker
    /// given one runs no isolation check: the test owns the host.
    pub driver: Option<Arc<dyn VirtDriver>>,
    /// Where to DNAT guests' metadata requests, if anywhere.
    pub metadata: Option<(std::net::Ipv4Addr, u16)>,
}

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The hypervisor is unreachable.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The metadata DNAT could not be installed.
    #[error("metadata DNAT")]
    MetadataDnat(#[source] stratus_host::CommandError),
    /// Tenant isolation cannot be enforced on this host.
    #[error(
        "refusing to start guests: tenant isolation cannot be enforced here: {0} (fix it, or set [compute] insecure_allow_unisolated = true on a host no other customer shares)"
    )]
    Unisolated(Gaps),
}

/// What tenant isolation lacks on this host (nothing is checked for fake
/// guests), and that lack as said on every launch when the operator chose to
/// start without it; an error when they did not.
async fn isolation_gaps(
    commands: &dyn HostCommands,
    real_guests: bool,
    config: &ComputeConfig,
) -> Result<(Gaps, Option<String>), WorkerError> {
    let gaps = if real_guests {
        isolation::check(commands).await
    } else {
        Gaps {
            nft_usable: true,
            ..Gaps::default()
        }
    };
    let unisolated = match (gaps.is_empty(), config.insecure_allow_unisolated) {
        (true, _) => None,
        (false, false) => return Err(WorkerError::Unisolated(gaps)),
        (false, true) => {
            error!(missing = %gaps, "starting WITHOUT tenant isolation (insecure_allow_unisolated): guests may spoof addresses and reach each other");
            Some(gaps.to_string())
        }
    };
    Ok((gaps, unisolated))
}

/// Builds the worker, recovers what a previous run left, and starts its
/// periodic tasks.
pub async fn start(setup: WorkerSetup<'_>) -> Result<Worker, WorkerError> {
    let config = setup.config;
    // A fake-driver worker (benchmarks, demos) must leave the machine's
    // network alone: a hundred of them on one host would otherwise all build
    // the same bridge and rewrite the same iptables tables for guests that
    // do not exist.
    let commands: Arc<dyn HostCommands> = match (setup.host_commands, config.driver) {
        (Some(commands), _) => commands,
        (None, DriverKind::Fake) => Arc::new(FakeHost::new()),
        (None, DriverKind::Libvirt) => Arc::new(RealHost::new()),
    };
    let real_guests = setup.driver.is_none() && config.driver == DriverKind::Libvirt;
    let (gaps, unisolated) = isolation_gaps(commands.as_ref(), real_guests, config).await?;
    let driver: Arc<dyn VirtDriver> = match (setup.driver, config.driver) {
        (Some(driver), _) => driver,
        (None, DriverKind::Fake) => Arc::new(FakeDriver::new()),
        (None, DriverKind::Libvirt) => {
            Arc::new(LibvirtDriver::connect(&config.libvirt_uri, config.virt_type.resolve()).await?)
        }
    };
    let instances_dir = setup.state_dir.join("instances");
    let firewall = Firewall::new(
        Iptables::new(commands.clone(), setup.state_dir.join("locks")),
        gaps.nft_usable.then(|| Nft::new(commands.clone())),
        Some(setup.state_dir.join("firewall.json")),
        config.cloud_ranges.clone(),
    );
    let rpc = RpcClient::new(setup.transport, setup.call_timeout);
    // The worker's own commands (images, disks) run on the host itself,
    // not in the namespace its networking may live in.
    let local: Arc<dyn HostCommands> = Arc::new(crate::host::local());
    let manager = ComputeManager::new(Parts {
        host: setup.host,
        availability_zone: config.availability_zone.clone(),
        images: ImageCache::new(
            instances_dir.join("_base"),
            Arc::new(RealQemuImg::new(local.clone())),
        ),
        instances_dir,
        host_state_file: setup.state_dir.join("compute-host.json"),
        outbox_file: setup.state_dir.join("compute-outbox.json"),
        driver,
        firewall: firewall.clone(),
        bridges: Arc::new(Bridges::new(commands)),
        vlan_interface: setup.vlan_interface,
        network: NetworkClient::new(rpc.clone()),
        conductor: ConductorClient::new(rpc.clone()),
        scheduler: SchedulerClient::new(rpc),
        prepare: Arc::new(GuestData {
            host: local,
            method: config.injection,
            config_drive: config.config_drive,
            availability_zone: config.availability_zone.clone(),
        }),
        config: config.clone(),
        unisolated,
    });
    // Before serving: a request must meet its build resumed, not half-done.
    manager.recover(&RequestContext::system()).await;
    let periodic = CancellationToken::new();
    tokio::spawn(manager.clone().run_periodic(periodic.clone()));
    Ok(Worker {
        service: Arc::new(ComputeService::new(manager.clone(), firewall)),
        manager,
        periodic,
    })
}
