//! RPC dispatch for the `network` topic.

use std::sync::Arc;

use async_trait::async_trait;
use stratus_rpc::clients::NetworkApi;
use stratus_rpc::wire::addresses::MapPublicAddresses;
use stratus_rpc::wire::network::{
    AllocateFixedIp, FixedIp, GetProjectNetwork, ProjectNetwork, ReleaseFixedIp,
};
use stratus_rpc::{Handled, RequestContext, Serves};

use crate::manager::NetworkManager;

/// Serves the network controller's methods.
#[derive(Debug, Clone)]
pub struct NetworkService {
    manager: Arc<NetworkManager>,
}

impl NetworkService {
    /// Serves `manager`.
    pub fn new(manager: Arc<NetworkManager>) -> Self {
        Self { manager }
    }
}

impl Serves for NetworkService {
    type Api = dyn NetworkApi;
}

#[async_trait]
impl NetworkApi for NetworkService {
    async fn allocate_fixed_ip(
        &self,
        _ctx: &RequestContext,
        request: AllocateFixedIp,
    ) -> Handled<FixedIp> {
        Ok(self.manager.allocate_fixed_ip(&request).await?)
    }

    async fn release_fixed_ip(&self, _ctx: &RequestContext, request: ReleaseFixedIp) -> Handled {
        Ok(self.manager.release_fixed_ip(&request).await?)
    }

    async fn map_public_addresses(
        &self,
        _ctx: &RequestContext,
        request: MapPublicAddresses,
    ) -> Handled {
        Ok(self.manager.map_public_addresses(&request).await?)
    }

    async fn project_network(
        &self,
        _ctx: &RequestContext,
        request: GetProjectNetwork,
    ) -> Handled<ProjectNetwork> {
        Ok(self.manager.project_network(&request).await?)
    }
}
