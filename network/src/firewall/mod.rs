//! The host firewall: per-instance chains and per-security-group chains,
//! kept as one in-memory state and applied whole on every change.

pub mod metadata;
pub mod render;

use std::sync::Arc;

use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::wire::ids::InstanceId;
use tokio::sync::Mutex;
use tracing::info;

use crate::linux::CommandError;
use crate::linux::iptables::Iptables;
use render::{Existing, FirewallState, GroupFilter, InstanceFilter, render};

/// This host's firewall.
#[derive(Debug)]
pub struct Firewall {
    iptables: Iptables,
    state: Mutex<FirewallState>,
}

impl Firewall {
    /// An empty firewall applied through `iptables`.
    pub fn new(iptables: Iptables) -> Arc<Self> {
        Arc::new(Self {
            iptables,
            state: Mutex::new(FirewallState::default()),
        })
    }

    /// Adds (or replaces) an instance's chains.
    pub async fn add_instance(
        &self,
        id: InstanceId,
        filter: InstanceFilter,
    ) -> Result<(), CommandError> {
        let mut state = self.state.lock().await;
        state.instances.insert(id, filter);
        self.apply(&state).await?;
        info!(instance_id = %id, "firewall applied");
        Ok(())
    }

    /// Removes an instance's chains, and stratus's chains altogether when it
    /// was the last instance.
    pub async fn remove_instance(&self, id: InstanceId) -> Result<(), CommandError> {
        let mut state = self.state.lock().await;
        state.instances.remove(&id);
        self.apply(&state).await?;
        info!(instance_id = %id, "firewall removed");
        Ok(())
    }

    /// Replaces a group's rules and members, re-applying if any instance
    /// here uses the group, directly or as a rule's source.
    pub async fn update_group(&self, update: SecurityGroupUpdate) -> Result<(), CommandError> {
        let mut state = self.state.lock().await;
        let filter = GroupFilter {
            rules: update.rules,
            members: update.members,
        };
        if state.groups.get(&update.group) == Some(&filter) {
            return Ok(());
        }
        state.groups.insert(update.group.clone(), filter);
        let used = state
            .instances
            .values()
            .any(|i| i.groups.contains(&update.group));
        let source = state.groups.values().any(|g| {
            g.rules.iter().any(|r| {
                r.source == stratus_rpc::wire::firewall::Source::Group(update.group.clone())
            })
        });
        if used || source {
            self.apply(&state).await?;
            info!(group = %update.group, "security group re-applied");
        }
        Ok(())
    }

    /// Replaces the whole state at once (start-up recovery, benchmarks).
    pub async fn replace(&self, new_state: FirewallState) -> Result<(), CommandError> {
        let mut state = self.state.lock().await;
        *state = new_state;
        self.apply(&state).await
    }

    /// A copy of the state, for inspection.
    pub async fn state(&self) -> FirewallState {
        self.state.lock().await.clone()
    }

    async fn apply(&self, state: &FirewallState) -> Result<(), CommandError> {
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
}
