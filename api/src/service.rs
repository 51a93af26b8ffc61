//! RPC dispatch for the `conductor` topic.

use async_trait::async_trait;
use stratus_rpc::clients::ConductorApi;
use stratus_rpc::wire::addresses::{PublicAddresses, PublicAddressesQuery};
use stratus_rpc::wire::conductor::{
    BuildClaim, ClaimAnswer, GuestMetadata, InstanceStatesQuery, InstanceUpdate, KnownInstance,
};
use stratus_rpc::{Handled, HandlerError, RemoteError, RequestContext, Serves};

use crate::conductor::Conductor;

/// Serves the conductor's methods.
#[derive(Debug)]
pub struct ConductorService {
    conductor: Conductor,
}

impl ConductorService {
    /// Serves `conductor`.
    pub fn new(conductor: Conductor) -> Self {
        Self { conductor }
    }
}

fn retry(e: crate::db::DbError) -> HandlerError {
    // The database may be briefly unreachable: the report is kept and redelivered.
    HandlerError::Retryable(RemoteError::from_error("DatabaseError", &e))
}

fn failed(e: crate::db::DbError) -> HandlerError {
    // A caller waits for the answer: it hears at once and asks again later.
    HandlerError::Permanent(RemoteError::from_error("DatabaseError", &e))
}

impl Serves for ConductorService {
    type Api = dyn ConductorApi;
}

#[async_trait]
impl ConductorApi for ConductorService {
    async fn instance_update(&self, ctx: &RequestContext, update: InstanceUpdate) -> Handled {
        let recorded = self.conductor.instance_update(ctx, &update).await;
        recorded.map_err(retry)
    }

    async fn instance_metadata(&self, ctx: &RequestContext, metadata: GuestMetadata) -> Handled {
        let recorded = self.conductor.instance_metadata(ctx, &metadata).await;
        recorded.map_err(retry)
    }

    async fn claim_build(&self, _ctx: &RequestContext, claim: BuildClaim) -> Handled<ClaimAnswer> {
        let answer = self.conductor.claim_build(&claim).await;
        answer.map_err(failed)
    }

    async fn instance_states(
        &self,
        _ctx: &RequestContext,
        query: InstanceStatesQuery,
    ) -> Handled<Vec<KnownInstance>> {
        let known = self.conductor.instance_states(&query).await;
        known.map_err(failed)
    }

    async fn public_addresses(
        &self,
        _ctx: &RequestContext,
        _query: PublicAddressesQuery,
    ) -> Handled<PublicAddresses> {
        let listing = self.conductor.public_addresses().await;
        listing.map_err(failed)
    }
}
