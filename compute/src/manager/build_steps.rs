//! The steps of a build, each journaled and timed: the fixed IP and bridge,
//! the image, the disk, the domain, the firewall, the guest started.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use stratus_host::CommandError;
use stratus_host::firewall::render::{InstanceFilter, port_device};
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::{GuestMetadata, InstanceState};
use stratus_rpc::wire::ids::MacAddress;
use stratus_rpc::wire::network::{AllocateFixedIp, FixedIp};
use stratus_rpc::{RequestContext, RpcError};
use tracing::{error, warn};

use super::ComputeManager;
use super::build::{BuildError, BuildTimings};
use crate::driver::DriverError;
use crate::image_cache::CachedImage;
use crate::instance_dir::{BuildStep, InstanceDir, InstanceRecord, domain_name};
use crate::state::PowerState;
use crate::xml::{Boot, DomainSpec, Nic};

/// Parses an address the network controller sent.
fn address(value: &str) -> Result<std::net::Ipv4Addr, BuildError> {
    value.parse().map_err(|source| BuildError::BadAddress {
        value: value.to_owned(),
        source,
    })
}

impl ComputeManager {
    /// Builds the instance, step by step, timing each; each step is in
    /// the journal (`record`) before it acts.
    pub(super) async fn build(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
        dir: &InstanceDir,
        record: &mut InstanceRecord,
    ) -> Result<BuildTimings, BuildError> {
        let started = Instant::now();
        let mut timings = BuildTimings::default();
        let id = request.instance_id;
        if let Some(missing) = &self.parts.unisolated {
            error!(missing = %missing, "launching a guest WITHOUT tenant isolation (insecure_allow_unisolated)");
        }
        let mac_address = id.mac();
        let mac = mac_address.to_string();
        self.step(dir, record, BuildStep::Network).await?;
        let step = Instant::now();
        let fixed = self.network_step(ctx, request, &mac_address).await?;
        timings.network = step.elapsed();

        self.report(ctx, id, InstanceState::Pending, Some("spawning"), None)
            .await;
        self.step(dir, record, BuildStep::Image).await?;
        let step = Instant::now();
        let base = self.image_step(request, dir).await?;
        timings.image = step.elapsed();

        self.step(dir, record, BuildStep::Disk).await?;
        let step = Instant::now();
        let config_drive = self
            .parts
            .prepare
            .prepare_disk(request, dir, &fixed)
            .await
            .map_err(BuildError::PrepareDisk)?;
        timings.prepare = step.elapsed();
        self.publish_metadata(ctx, request, &fixed).await;

        let step = Instant::now();
        let spec = self.domain_spec(request, dir, &base, &fixed, mac, config_drive);
        timings.xml = step.elapsed();

        self.step(dir, record, BuildStep::Firewall).await?;
        let step = Instant::now();
        self.firewall_step(request, &fixed, mac_address).await?;
        timings.firewall = step.elapsed();

        self.step(dir, record, BuildStep::Spawning).await?;
        let step = Instant::now();
        self.parts.driver.spawn(&spec).await?;
        self.wait_for(&spec.name, PowerState::Running).await?;
        timings.libvirt = step.elapsed();

        self.step(dir, record, BuildStep::Built).await?;
        timings.total = started.elapsed();
        Ok(timings)
    }

    /// The fixed IP, and the bridge (and VLAN) it lives on.
    async fn network_step(
        &self,
        ctx: &RequestContext,
        request: &RunInstance,
        mac: &MacAddress,
    ) -> Result<FixedIp, BuildError> {
        let fixed = self
            .allocate(
                ctx,
                AllocateFixedIp {
                    instance_id: request.instance_id,
                    project_id: request.project_id.clone(),
                    mac: mac.clone(),
                    deadline_ms: None,
                    requested_address: request.private_ip_address,
                },
            )
            .await?;
        self.ensure_bridge(&fixed)
            .await
            .map_err(BuildError::Bridge)?;
        Ok(fixed)
    }

    /// The cached base image, the instance's overlay on it, and copies of
    /// its kernel and ramdisk.
    async fn image_step(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
    ) -> Result<CachedImage, BuildError> {
        let base = self.parts.images.fetch(&request.image).await?;
        self.parts
            .images
            .create_overlay(&base, &dir.disk(), request.flavor.root_gb)
            .await?;
        for (from, to) in [(&base.kernel, dir.kernel()), (&base.ramdisk, dir.ramdisk())] {
            if let Some(from) = from {
                tokio::fs::copy(from, to).await.map_err(BuildError::Files)?;
            }
        }
        Ok(base)
    }

    /// What libvirt is asked to run.
    fn domain_spec(
        &self,
        request: &RunInstance,
        dir: &InstanceDir,
        base: &CachedImage,
        fixed: &FixedIp,
        mac: String,
        config_drive: Option<PathBuf>,
    ) -> DomainSpec {
        let id = request.instance_id;
        let boot = match &base.kernel {
            Some(_) => Boot::Kernel {
                kernel: dir.kernel(),
                ramdisk: base.ramdisk.as_ref().map(|_| dir.ramdisk()),
                cmdline: self.parts.config.kernel_cmdline.clone(),
            },
            None => Boot::Disk,
        };
        DomainSpec {
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
                mac,
                device: port_device(&id),
            }),
            console_log: dir.console_log(),
        }
    }

    /// The instance's security groups, then its own chain and port pins.
    async fn firewall_step(
        &self,
        request: &RunInstance,
        fixed: &FixedIp,
        mac: MacAddress,
    ) -> Result<(), BuildError> {
        let firewall = &self.parts.firewall;
        for group in &request.security_groups {
            firewall
                .update_group(group.clone())
                .await
                .map_err(BuildError::Firewall)?;
        }
        let filter = InstanceFilter {
            address: address(&fixed.address)?,
            mac,
            device: port_device(&request.instance_id),
            dhcp_server: address(&fixed.dhcp_server)?,
            groups: request
                .security_groups
                .iter()
                .map(|g| g.group.clone())
                .collect(),
            source_dest_check: request.source_dest_check,
        };
        firewall
            .add_instance(request.instance_id, filter)
            .await
            .map_err(BuildError::Firewall)
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
            warn!(error = %error_chain(&e), "could not publish the instance's metadata");
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

    /// Asks the network controller for a fixed IP. A reply lost with the
    /// broker connection is asked again, within the call timeout: an
    /// instance holds one address, so the second ask returns the first's.
    pub(super) async fn allocate(
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
                    warn!(error = %error_chain(&e), "asking for the fixed IP again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map_err(BuildError::Network),
            }
        }
    }
}
