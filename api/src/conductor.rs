//! The conductor: records what compute hosts and the scheduler report about
//! instances in the database, newest report first, and keeps the hosts'
//! view of security group members current.

use stratus_rpc::RequestContext;
use stratus_rpc::clients::{ComputeClient, NetworkClient};
use stratus_rpc::wire::addresses::PublicAddresses;
use stratus_rpc::wire::conductor::{
    BuildClaim, ClaimAnswer, GuestMetadata, InstanceStatesQuery, InstanceUpdate, KnownInstance,
};
use tracing::{info, warn};

use crate::app::instances::record_report;
use crate::app::security_groups::group_update;
use crate::db::{Db, DbError};

/// Records instance state changes and where instances run.
#[derive(Debug, Clone)]
pub struct Conductor {
    db: Db,
    compute: ComputeClient,
    /// The network host, told of public addresses freed with an instance.
    network: Option<NetworkClient>,
}

impl Conductor {
    /// A conductor writing to `db`, reaching hosts through `compute`.
    pub fn new(db: Db, compute: ComputeClient) -> Self {
        Self {
            db,
            compute,
            network: None,
        }
    }

    /// Tells `network` of the public addresses freed when an instance is
    /// gone (without it, the network host's reconcile finds out).
    pub fn with_network(mut self, network: NetworkClient) -> Self {
        self.network = Some(network);
        self
    }

    /// Every associated public address, for the network host's reconcile.
    pub async fn public_addresses(&self) -> Result<PublicAddresses, DbError> {
        crate::app::addresses::listing(&self.db).await
    }

    /// Records one state change unless a newer one is already stored. A
    /// host still building an instance the user terminated is told to
    /// terminate it.
    pub async fn instance_update(
        &self,
        ctx: &RequestContext,
        update: &InstanceUpdate,
    ) -> Result<(), DbError> {
        info!(
            request_id = %ctx.request_id,
            instance_id = %update.instance_id,
            host = update.host.as_ref().map_or("", |h| h.as_str()),
            state = %update.state,
            task_state = update.task_state.as_deref().unwrap_or(""),
            reason = update.reason.as_deref().unwrap_or(""),
            "instance state changed"
        );
        let uuid = update.instance_id.to_string();
        // A report of an instance gone frees its public address (in the
        // tables, with the state): the network host is told which.
        let held = if update.state.is_gone() {
            self.db.address_of_instance(&uuid).await?
        } else {
            None
        };
        let left_group = record_report(&self.db, &self.compute, ctx, update).await?;
        if let (Some(held), Some(network)) = (held, &self.network)
            && self.db.address_of_instance(&uuid).await?.is_none()
        {
            crate::app::addresses::clear_in_background(network, ctx, vec![held.public_ip]);
        }
        if left_group
            && let Some(stored) = self
                .db
                .instance_by_uuid(&update.instance_id.to_string())
                .await?
        {
            self.refresh_members(ctx, &stored.groups).await?;
        }
        Ok(())
    }

    /// Records an instance's address and zone; its groups' members changed.
    pub async fn instance_metadata(
        &self,
        ctx: &RequestContext,
        metadata: &GuestMetadata,
    ) -> Result<(), DbError> {
        let uuid = metadata.instance_id.to_string();
        self.db
            .set_placement(
                &uuid,
                &metadata.fixed_ip.to_string(),
                &metadata.availability_zone,
            )
            .await?;
        if let Some(stored) = self.db.instance_by_uuid(&uuid).await? {
            self.refresh_members(ctx, &stored.groups).await?;
        }
        Ok(())
    }

    /// Grants or refuses a host's claim to build an instance.
    pub async fn claim_build(&self, claim: &BuildClaim) -> Result<ClaimAnswer, DbError> {
        crate::app::instances::claim_build(&self.db, claim).await
    }

    /// What the database says of the instances asked about.
    pub async fn instance_states(
        &self,
        query: &InstanceStatesQuery,
    ) -> Result<Vec<KnownInstance>, DbError> {
        crate::app::instances::instance_states(&self.db, query).await
    }

    /// Tells the hosts the members of `groups` changed, for the groups some
    /// rule names as a source (only those rules use members).
    async fn refresh_members(
        &self,
        ctx: &RequestContext,
        groups: &[(String, String)],
    ) -> Result<(), DbError> {
        let ids: Vec<String> = groups.iter().map(|(id, _)| id.clone()).collect();
        for group in self.db.referenced_groups(&ids).await? {
            match group_update(&self.db, &group).await {
                Ok(update) => {
                    if let Err(e) = self.compute.refresh_security_group(ctx, &update).await {
                        warn!(group = %group.group_id, error = %stratus_rpc::error::error_chain(&e), "could not fan out a membership change");
                    }
                }
                Err(e) => {
                    warn!(group = %group.group_id, error = %stratus_rpc::error::error_chain(&e), "group update")
                }
            }
        }
        Ok(())
    }
}
