//! The host firewall: per-instance chains and per-security-group chains,
//! kept as one in-memory state and applied whole on every change.

pub mod antispoof;
pub mod metadata;
pub mod render;

use std::path::PathBuf;
use std::sync::Arc;

use ipnet::Ipv4Net;
use stratus_rpc::wire::firewall::{SecurityGroupUpdate, Source};
use stratus_rpc::wire::ids::InstanceId;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::iptables::Iptables;
use crate::nft::Nft;
use crate::{CommandError, check_ifname};
use render::{Existing, FirewallState, GroupFilter, InstanceFilter, render};
use stratus_rpc::error::error_chain;

/// This host's firewall: the filter table's chains and the bridge table's
/// anti-spoofing, from one state.
#[derive(Debug)]
pub struct Firewall {
    iptables: Iptables,
    nft: Option<Nft>,
    state_file: Option<PathBuf>,
    cloud: Vec<Ipv4Net>,
    applied: Mutex<Applied>,
}

/// The state, and the bridge table last applied (group changes leave it be).
#[derive(Debug, Default)]
struct Applied {
    state: FirewallState,
    bridge_table: Option<String>,
}

impl Firewall {
    /// A firewall applied through `iptables` and `nft` (none: no
    /// anti-spoofing, only where the operator chose to run unisolated).
    /// With a `state_file`
    /// it starts from the state a previous run left there (so applying it
    /// keeps the chains of guests that outlived the worker) and saves every
    /// state it applies. `cloud`: the cloud's own ranges (fixed, public),
    /// which no guest may send from but its own address, whatever its
    /// source/destination check.
    pub fn new(
        iptables: Iptables,
        nft: Option<Nft>,
        state_file: Option<PathBuf>,
        cloud: Vec<Ipv4Net>,
    ) -> Arc<Self> {
        let state = state_file.as_deref().map(load).unwrap_or_default();
        Arc::new(Self {
            iptables,
            nft,
            state_file,
            cloud,
            applied: Mutex::new(Applied {
                state,
                bridge_table: None,
            }),
        })
    }

    /// Adds (or replaces) an instance's chains and its port's anti-spoofing.
    pub async fn add_instance(
        &self,
        id: InstanceId,
        filter: InstanceFilter,
    ) -> Result<(), CommandError> {
        check_ifname(&filter.device)?;
        let mut applied = self.applied.lock().await;
        applied.state.instances.insert(id, filter);
        self.apply(&mut applied).await?;
        info!(instance_id = %id, "firewall applied");
        Ok(())
    }

    /// Removes an instance's chains and port, and stratus's chains and
    /// table altogether when it was the last instance.
    pub async fn remove_instance(&self, id: InstanceId) -> Result<(), CommandError> {
        let mut applied = self.applied.lock().await;
        applied.state.instances.remove(&id);
        self.apply(&mut applied).await?;
        info!(instance_id = %id, "firewall removed");
        Ok(())
    }

    /// Replaces a group's rules and members, re-applying if any instance
    /// here uses the group, directly or as a rule's peer.
    pub async fn update_group(&self, update: SecurityGroupUpdate) -> Result<(), CommandError> {
        let mut applied = self.applied.lock().await;
        let filter = GroupFilter {
            rules: update.rules,
            egress: update.egress,
            members: update.members,
        };
        let state = &mut applied.state;
        if state.groups.get(&update.group) == Some(&filter) {
            return Ok(());
        }
        state.groups.insert(update.group.clone(), filter);
        let used = state
            .instances
            .values()
            .any(|i| i.groups.contains(&update.group));
        let named = Source::Group(update.group.clone());
        let peer = state
            .groups
            .values()
            .any(|g| g.rules.iter().chain(&g.egress).any(|r| r.source == named));
        if used || peer {
            self.apply(&mut applied).await?;
            info!(group = %update.group, "security group re-applied");
        }
        Ok(())
    }

    /// Gives an instance here new security groups (each with its rules and
    /// members) and re-applies; false when the instance has no filters here.
    pub async fn set_instance_groups(
        &self,
        id: InstanceId,
        groups: Vec<SecurityGroupUpdate>,
    ) -> Result<bool, CommandError> {
        let mut applied = self.applied.lock().await;
        let state = &mut applied.state;
        let Some(instance) = state.instances.get_mut(&id) else {
            return Ok(false);
        };
        instance.groups = groups.iter().map(|g| g.group.clone()).collect();
        for update in groups {
            let filter = GroupFilter {
                rules: update.rules,
                egress: update.egress,
                members: update.members,
            };
            state.groups.insert(update.group, filter);
        }
        self.apply(&mut applied).await?;
        info!(instance_id = %id, "instance security groups re-applied");
        Ok(true)
    }

    /// Turns an instance's source/destination check on or off and
    /// re-applies; false when the instance has no filters here.
    pub async fn set_source_dest_check(
        &self,
        id: InstanceId,
        checked: bool,
    ) -> Result<bool, CommandError> {
        let mut applied = self.applied.lock().await;
        let Some(instance) = applied.state.instances.get_mut(&id) else {
            return Ok(false);
        };
        if instance.source_dest_check != checked {
            instance.source_dest_check = checked;
            let result = if checked {
                self.apply(&mut applied).await
            } else {
                self.apply_filter_first(&mut applied).await
            };
            if let Err(e) = result {
                // The caller keeps the old value: so must the next apply.
                if let Some(instance) = applied.state.instances.get_mut(&id) {
                    instance.source_dest_check = !checked;
                }
                if let Err(again) = self.apply(&mut applied).await {
                    warn!(instance_id = %id, error = %error_chain(&again), "could not restore the source/destination check");
                }
                return Err(e);
            }
        }
        info!(instance_id = %id, checked, "source/destination check applied");
        Ok(true)
    }

    /// Replaces the whole state at once (benchmarks, tests).
    pub async fn replace(&self, new_state: FirewallState) -> Result<(), CommandError> {
        let mut applied = self.applied.lock().await;
        applied.state = new_state;
        self.apply(&mut applied).await
    }

    /// Keeps the instances `keep` accepts and applies the result whole,
    /// whatever the kernel held: a worker's start-up reconciliation.
    pub async fn reconcile(&self, keep: impl Fn(&InstanceId) -> bool) -> Result<(), CommandError> {
        let mut applied = self.applied.lock().await;
        applied.state.instances.retain(|id, _| keep(id));
        applied.bridge_table = None;
        self.apply(&mut applied).await?;
        info!(
            instances = applied.state.instances.len(),
            "firewall reconciled"
        );
        Ok(())
    }

    /// A copy of the state, for inspection.
    pub async fn state(&self) -> FirewallState {
        self.applied.lock().await.state.clone()
    }

    async fn apply(&self, applied: &mut Applied) -> Result<(), CommandError> {
        // Ports are pinned before any chain admits traffic to them.
        self.apply_bridge(applied).await?;
        self.apply_filter(&applied.state).await?;
        self.save(&applied.state).await;
        Ok(())
    }

    /// As [`Self::apply`], the filter table first: when a port's check goes
    /// off, its chains must catch foreign addresses before the bridge lets
    /// them through.
    async fn apply_filter_first(&self, applied: &mut Applied) -> Result<(), CommandError> {
        self.apply_filter(&applied.state).await?;
        self.apply_bridge(applied).await?;
        self.save(&applied.state).await;
        Ok(())
    }

    async fn apply_bridge(&self, applied: &mut Applied) -> Result<(), CommandError> {
        let bridge_table = antispoof::render(&applied.state.instances, &self.cloud);
        if let Some(nft) = &self.nft
            && applied.bridge_table.as_ref() != Some(&bridge_table)
        {
            applied.bridge_table = None;
            nft.apply(&bridge_table).await?;
            applied.bridge_table = Some(bridge_table);
        }
        Ok(())
    }

    async fn apply_filter(&self, state: &FirewallState) -> Result<(), CommandError> {
        self.iptables
            .update(|saved| {
                let existing = Existing::parse(saved);
                if state.instances.is_empty()
                    && existing.chains.is_empty()
                    && !existing.forward_jump
                {
                    return None;
                }
                Some(render(state, &existing))
            })
            .await
    }

    async fn save(&self, state: &FirewallState) {
        if let Some(path) = &self.state_file {
            save(path, state).await;
        }
    }
}

/// The state a previous run saved; empty when there is none or it is
/// unreadable (said loudly: those guests' filters go at the next apply).
fn load(path: &std::path::Path) -> FirewallState {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %error_chain(&e), "firewall state unreadable; starting empty");
            FirewallState::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FirewallState::default(),
        Err(e) => {
            warn!(path = %path.display(), error = %error_chain(&e), "firewall state unreadable; starting empty");
            FirewallState::default()
        }
    }
}

/// Writes the state through a temporary file and a rename, so a crash
/// leaves the old state or the new, never half of one. Not fatal: the
/// kernel already holds what was applied.
async fn save(path: &std::path::Path, state: &FirewallState) {
    let tmp = path.with_extension("tmp");
    let result = async {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if let Err(e) = result {
        warn!(path = %path.display(), error = %error_chain(&e), "could not save the firewall state");
    }
}
