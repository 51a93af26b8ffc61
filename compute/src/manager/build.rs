//! `run_instance`: from a request to a running guest, or to an error with a
//! reason and nothing left behind.

use std::time::{Duration, Instant};

use stratus_host::CommandError;
use stratus_host::firewall::render::{InstanceFilter, port_device};
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::{GuestMetadata, InstanceState};
use stratus_rpc::wire::ids::MacAddress;
use stratus_rpc::wire::network::{AllocateFixedIp, FixedIp};
use stratus_rpc::wire::scheduler::ScheduleRunInstances;
use stratus_rpc::{RequestContext, RpcError};
use tracing::{error, info, instrument, warn};

use super::ComputeManager;
use super::clean_up::CleanUp;
use crate::driver::DriverError;
use crate::image_cache::ImageError;
use crate::instance_dir::{InstanceRecord, domain_name};
use crate::state::PowerState;
use crate::xml::{Boot, DomainSpec, Nic};

/// Why a build failed; its text is the instance's state reason.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No fixed IP.
    #[error("network: {0}")]
    Network(#[source] RpcError),
    /// The bridge or VLAN could not be set up.
    #[error("bridge: {0}")]
    Bridge(#[source] CommandError),
    /// The image could not be fetched or used.
    #[error("image: {0}")]
    Image(#[from] ImageError),
    /// The instance folder could not be written.
    #[error("instance files: {0}")]
    Files(#[source] std::io::Error),
    /// The disk could not be prepared (key injection, config drive).
    #[error("preparing the disk: {0}")]
    PrepareDisk(String),
    /// The firewall could not be applied.
    #[error("firewall: {0}")]
    Firewall(#[source] CommandError),
    /// The hypervisor failed.
    #[error("hypervisor: {0}")]
    Driver(#[from] DriverError),
    /// The network controller answered with an address that does not parse.
    #[error("network: unusable address {0:?}")]
    BadAddress(String),
}

impl BuildError {
    /// Whether another host might succeed: failures of this host's
    /// hypervisor, files, bridges or firewall are worth a try elsewhere; a
    /// missing image, a bad disk or an exhausted network fail everywhere
    /// alike, so the user hears the real reason at once.
    pub fn another_host_may_succeed(&self) -> bool {
        match self {
            Self::Bridge(_) | Self::Files(_) | Self::Firewall(_) | Self::Driver(_) => true,
            Self::Image(ImageError::Io { source, .. }) => {
                source.kind() != std::io::ErrorKind::NotFound
            }
            Self::Image(_) | Self::Network(_) | Self::PrepareDisk(_) | Self::BadAddress(_) => false,
        }
    }
}

/// How long each step of a build took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildTimings {
    /// Fixed IP allocation and bridge.
    pub network: Duration,
    /// Image fetch, overlay, kernel and ramdisk.
    pub image: Duration,
    /// Disk preparation hook.
    pub prepare: Duration,
    /// Rendering the domain.
    pub xml: Duration,
    /// Applying the firewall.
    pub firewall: Duration,
    /// Defining, starting and waiting for RUNNING.
    pub libvirt: Duration,
    /// All of it.
    pub total: Duration,
}

/// MAC address derived from the instance id, so a retried build gets the
/// same one: locally administered unicast (02) and 40 random bits of the
/// UUID, since guests on one bridge are pinned to their MACs and two alike
/// would take each other's frames (24 bits collided about once in 500 full
/// networks of 250 guests).
fn mac_for(request: &RunInstance) -> String {
    let b = request.instance_id.0.as_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[11], b[12], b[13], b[14], b[15]
    )
}

impl ComputeManager {
    /// Builds and boots the instance. A second call for the same instance
    /// waits for the first, and finds it running.
    #[instrument(skip_all, fields(instance_id = %request.instance_id, request_id = %ctx.request_id, host = %self.parts.host))]
    pub async fn run_instance(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
    ) -> Option<BuildTimings> {
        let id = request.instance_id;
        let lock = self.lock_for(id);
        let _held = lock.lock().await;
        if self.interrupted.claimed(id) {
            info!("building again what a restart interrupted");
        }
        // A request cast straight to this host (no scheduler) is attempt 1.
        let attempt = u32::try_from(request.placement.hosts_tried.len().max(1)).unwrap_or(u32::MAX);
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, attempt);
        let name = domain_name(&id);
        if let Ok(Some(PowerState::Running)) = self.parts.driver.state(&name).await {
            info!("already running");
            self.report(ctx, id, InstanceState::Running, None, None)
                .await;
            return None;
        }
        if let Err(reason) = self.claim(request) {
            warn!(%reason, "refusing the build");
            self.reschedule(ctx, request, reason).await;
            return None;
        }
        self.report(ctx, id, InstanceState::Pending, Some("networking"), None)
            .await;
        match self.build(ctx, request).await {
            Ok(timings) => {
                let steps = &stratus_rpc::metrics::metrics().build_steps;
                for (step, took) in [
                    ("network", timings.network),
                    ("image", timings.image),
                    ("prepare", timings.prepare),
                    ("xml", timings.xml),
                    ("firewall", timings.firewall),
                    ("libvirt", timings.libvirt),
                    ("total", timings.total),
                ] {
                    steps
                        .get_or_create(&stratus_rpc::metrics::labels(&[("step", step)]))
                        .observe(took.as_secs_f64());
                }
                info!(total_ms = timings.total.as_millis() as u64, "running");
                self.report(ctx, id, InstanceState::Running, None, None)
                    .await;
                Some(timings)
            }
            Err(e) => {
                let reason = e.to_string();
                warn!(%reason, "build failed; cleaning up");
                if e.another_host_may_succeed() {
                    // Clean before handing back: the next host must not meet
                    // this one's leftovers (its address above all). An
                    // address still held would be released from under the
                    // next host's guest later, so then it ends here.
                    match self.clean_up(ctx, id).await {
                        CleanUp::Done => self.reschedule(ctx, request, reason).await,
                        CleanUp::AddressHeld => {
                            let reason = format!(
                                "{reason}; not tried on another host: its fixed IP could not be released yet"
                            );
                            self.report(ctx, id, InstanceState::Error, None, Some(reason))
                                .await;
                        }
                        CleanUp::DomainRemains(e) => {
                            let reason = format!(
                                "{reason}; not tried on another host: its domain could not be destroyed: {e}"
                            );
                            self.report(ctx, id, InstanceState::Error, None, Some(reason))
                                .await;
                        }
                    }
                } else {
                    // The user hears why at once; cleaning up may itself wait
                    // on what failed (an unreachable network controller).
                    self.report(ctx, id, InstanceState::Error, None, Some(reason))
                        .await;
                    self.clean_up(ctx, id).await;
                }
                None
            }
        }
    }

    /// Hands an instance this host could not build back to the scheduler,
    /// which tries another host or ends it in error with the reason.
    async fn reschedule(&self, ctx: &RequestContext, request: &RunInstance, reason: String) {
        let id = request.instance_id;
        let mut again = request.clone();
        let placement = &mut again.placement;
        // A request cast straight to this host has no record of it yet.
        if placement.hosts_tried.last() != Some(&self.parts.host) {
            placement.hosts_tried.push(self.parts.host.clone());
        }
        placement
            .failures
            .push(format!("{}: {reason}", self.parts.host));
        placement.limits = None;
        self.report(
            ctx,
            id,
            InstanceState::Pending,
            Some("scheduling"),
            Some(reason.clone()),
        )
        .await;
        self.forget(id);
        let handed_back = self
            .parts
            .scheduler
            .run_instance(
                ctx,
                &ScheduleRunInstances {
                    instances: vec![again],
                },
            )
            .await;
        if let Err(e) = handed_back {
            let reason = format!("{reason}; handing it back to the scheduler failed: {e}");
            self.report(ctx, id, InstanceState::Error, None, Some(reason))
                .await;
        }
    }

    async fn build(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
    ) -> Result<BuildTimings, BuildError> {
        let started = Instant::now();
        let mut timings = BuildTimings::default();
        let id = request.instance_id;
        let dir = self.dir(&id);
        if let Some(missing) = &self.parts.unisolated {
            error!(missing = %missing, "launching a guest WITHOUT tenant isolation (insecure_allow_unisolated)");
        }
        let mac = mac_for(request);
        let mac_address: MacAddress = mac
            .parse()
            .map_err(|_| BuildError::BadAddress(mac.clone()))?;

        // The record comes first, so a worker killed from here on finds the
        // build on restart and cleans it up, the address included.
        self.outbox.building(id);
        tokio::fs::create_dir_all(dir.root())
            .await
            .map_err(BuildError::Files)?;
        let record = InstanceRecord {
            instance_id: id,
            project_id: request.project_id.clone(),
            flavor: request.flavor.clone(),
            built: false,
        };
        dir.write_record(&record).await.map_err(BuildError::Files)?;

        let step = Instant::now();
        let fixed = self
            .allocate(
                ctx,
                AllocateFixedIp {
                    instance_id: id,
                    project_id: request.project_id.clone(),
                    mac: mac_address.clone(),
                    deadline_ms: None,
                },
            )
            .await?;
        self.ensure_bridge(&fixed)
            .await
            .map_err(BuildError::Bridge)?;
        timings.network = step.elapsed();

        self.report(ctx, id, InstanceState::Pending, Some("spawning"), None)
            .await;
        let step = Instant::now();
        let base = self.parts.images.fetch(&request.image).await?;
        self.parts
            .images
            .create_overlay(&base, &dir.disk(), request.flavor.root_gb)
            .await?;
        if let Some(kernel) = &base.kernel {
            tokio::fs::copy(kernel, dir.kernel())
                .await
                .map_err(BuildError::Files)?;
        }
        if let Some(ramdisk) = &base.ramdisk {
            tokio::fs::copy(ramdisk, dir.ramdisk())
                .await
                .map_err(BuildError::Files)?;
        }
        timings.image = step.elapsed();

        let step = Instant::now();
        let config_drive = self
            .parts
            .prepare
            .prepare_disk(request, &dir, &fixed)
            .await
            .map_err(BuildError::PrepareDisk)?;
        timings.prepare = step.elapsed();
        self.publish_metadata(ctx, request, &fixed).await;

        let step = Instant::now();
        let boot = match &base.kernel {
            Some(_) => Boot::Kernel {
                kernel: dir.kernel(),
                ramdisk: base.ramdisk.as_ref().map(|_| dir.ramdisk()),
                cmdline: self.parts.config.kernel_cmdline.clone(),
            },
            None => Boot::Disk,
        };
        let spec = DomainSpec {
            name: domain_name(&id),
            uuid: id.0,
            domain_type: self.parts.config.virt_type.resolve(),
            memory_mb: request.flavor.memory_mb,
            vcpus: request.flavor.vcpus,
            boot,
            disk: dir.disk(),
            config_drive,
            nic: Some(Nic {
                bridge: fixed.bridge.clone(),
                mac: mac.clone(),
                device: port_device(&id),
            }),
            console_log: dir.console_log(),
        };
        timings.xml = step.elapsed();

        let step = Instant::now();
        for group in &request.security_groups {
            self.parts
                .firewall
                .update_group(group.clone())
                .await
                .map_err(BuildError::Firewall)?;
        }
        let address = fixed
            .address
            .parse()
            .map_err(|_| BuildError::BadAddress(fixed.address.clone()))?;
        let dhcp_server = fixed
            .dhcp_server
            .parse()
            .map_err(|_| BuildError::BadAddress(fixed.dhcp_server.clone()))?;
        let filter = InstanceFilter {
            address,
            mac: mac_address,
            device: port_device(&id),
            dhcp_server,
            groups: request
                .security_groups
                .iter()
                .map(|g| g.group.clone())
                .collect(),
        };
        self.parts
            .firewall
            .add_instance(id, filter)
            .await
            .map_err(BuildError::Firewall)?;
        timings.firewall = step.elapsed();

        let step = Instant::now();
        self.parts.driver.spawn(&spec).await?;
        self.wait_for(&spec.name, PowerState::Running).await?;
        timings.libvirt = step.elapsed();

        dir.write_record(&InstanceRecord {
            built: true,
            ..record
        })
        .await
        .map_err(BuildError::Files)?;
        timings.total = started.elapsed();
        Ok(timings)
    }

    /// Tells the conductor what the metadata service should answer this
    /// instance. Not fatal: the config drive carries the same data.
    async fn publish_metadata(&self, ctx: &RequestContext, request: &RunInstance, fixed: &FixedIp) {
        let Ok(fixed_ip) = fixed.address.parse() else {
            return;
        };
        let metadata = GuestMetadata {
            instance_id: request.instance_id,
            fixed_ip,
            ami_id: request.image.id.clone(),
            reservation_id: request.reservation_id.clone().unwrap_or_default(),
            availability_zone: self.parts.availability_zone.clone(),
            security_groups: request
                .security_groups
                .iter()
                .map(|g| g.group.to_string())
                .collect(),
            key: request.key_data.clone().map(|key| {
                (
                    request.key_name.clone().unwrap_or_else(|| "default".into()),
                    key,
                )
            }),
            user_data: request.user_data.clone(),
        };
        if let Err(e) = self.parts.conductor.instance_metadata(ctx, &metadata).await {
            warn!(error = %e, "could not publish the instance's metadata");
        }
    }

    async fn ensure_bridge(&self, fixed: &FixedIp) -> Result<(), CommandError> {
        match fixed.vlan {
            Some(vlan) => {
                self.parts
                    .bridges
                    .ensure_vlan_bridge(vlan, &self.parts.vlan_interface, &fixed.bridge)
                    .await
            }
            None => self.parts.bridges.ensure_bridge(&fixed.bridge).await,
        }
    }

    /// Polls the driver until the domain is in `wanted`, up to the spawn timeout.
    pub(super) async fn wait_for(&self, name: &str, wanted: PowerState) -> Result<(), DriverError> {
        let timeout = self.spawn_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            if self.parts.driver.state(name).await? == Some(wanted) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Timeout {
                    domain: name.to_owned(),
                    wanted,
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes everything an instance holds on this host and its fixed IP:
    /// domain, chains, address, files. Safe on a half-built instance and
    /// when repeated.
    /// Asks the network controller for a fixed IP. A reply lost with the
    /// broker connection is asked again, within the call timeout: an
    /// instance holds one address, so the second ask returns the first's.
    async fn allocate(
        &self,
        ctx: &RequestContext,
        mut allocate: AllocateFixedIp,
    ) -> Result<FixedIp, BuildError> {
        let timeout = self.parts.network.timeout();
        let deadline = Instant::now() + timeout;
        loop {
            // Each ask carries when this one stops waiting for it.
            let wall = std::time::SystemTime::now() + timeout;
            allocate.deadline_ms = wall
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok());
            match self.parts.network.allocate_fixed_ip(ctx, &allocate).await {
                Err(e @ RpcError::ConnectionLost { .. }) if Instant::now() < deadline => {
                    warn!(error = %e, "asking for the fixed IP again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map_err(BuildError::Network),
            }
        }
    }
}
