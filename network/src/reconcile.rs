//! Addresses whose release was lost come back: at start and every
//! `[network] reconcile_interval_secs`, the controller asks the conductor
//! what the database says of every instance holding an address, and
//! releases (address and DHCP entry, as any release) those of instances
//! that are gone. An instance the database does not know, or an answer
//! that did not come, releases nothing: only a positive "gone" does. At
//! start every network's DHCP entries are first rewritten from the
//! allocations, in case a kill fell between an allocation and its entry.
//!
//! With public addresses on, each pass also asks the conductor for every
//! mapping and replaces the controller's replica with it (changes pushed
//! after the listing was taken stay), so a lost push comes back too.

use std::sync::Arc;
use std::time::Duration;

use stratus_rpc::RequestContext;
use stratus_rpc::clients::ConductorClient;
use stratus_rpc::wire::addresses::PublicAddressesQuery;
use stratus_rpc::wire::conductor::InstanceStatesQuery;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::ReleaseFixedIp;
use tracing::{info, warn};

use crate::error::NetworkError;
use crate::manager::NetworkManager;

/// Instances asked about per call.
const BATCH: usize = 200;

/// What one pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Instances holding an address.
    pub held: usize,
    /// Addresses released: their instances are gone.
    pub released: usize,
    /// Instances not asked about or not answered (a failed call).
    pub unanswered: usize,
}

/// Releases the addresses of gone instances.
#[derive(Debug, Clone)]
pub struct Reconciler {
    manager: Arc<NetworkManager>,
    conductor: ConductorClient,
}

impl Reconciler {
    /// Reconciles `manager`'s addresses with what `conductor` says.
    pub fn new(manager: Arc<NetworkManager>, conductor: ConductorClient) -> Self {
        Self { manager, conductor }
    }

    /// The DHCP entries made right again, then one pass now and one every
    /// `every` (0: none at all).
    pub async fn run(self, every: Duration) {
        if let Err(e) = self.manager.resync_dhcp().await {
            warn!(error = %stratus_rpc::error::error_chain(&e), "rewriting DHCP host entries");
        }
        if every.is_zero() {
            return;
        }
        loop {
            match self.pass().await {
                Ok(done) if done.released > 0 || done.unanswered > 0 => info!(
                    held = done.held,
                    released = done.released,
                    unanswered = done.unanswered,
                    "addresses reconciled"
                ),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %stratus_rpc::error::error_chain(&e), "reconciling addresses")
                }
            }
            if let Err(e) = self.public_pass().await {
                warn!(error = %stratus_rpc::error::error_chain(&e), "reconciling public addresses");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Replaces the public-address replica with the conductor's listing and
    /// applies it; false when public addresses are off here. An unanswered
    /// call changes nothing.
    pub async fn public_pass(&self) -> Result<bool, NetworkError> {
        if self.manager.public().is_none() {
            return Ok(false);
        }
        let ctx = RequestContext::system();
        let listing = match self
            .conductor
            .public_addresses(&ctx, &PublicAddressesQuery {})
            .await
        {
            Ok(listing) => listing,
            Err(e) => {
                warn!(error = %stratus_rpc::error::error_chain(&e), "could not list public addresses; keeping the mappings");
                return Ok(false);
            }
        };
        self.manager.replace_public_addresses(&listing).await
    }

    /// Asks about every instance holding an address, in batches, and
    /// releases those of gone ones.
    pub async fn pass(&self) -> Result<Reconciled, NetworkError> {
        let holders = self.manager.ipam().store().holders().await?;
        let mut done = Reconciled {
            held: holders.len(),
            ..Reconciled::default()
        };
        let ids: Vec<InstanceId> = holders
            .iter()
            .filter_map(|h| match h.parse() {
                Ok(id) => Some(id),
                Err(_) => {
                    warn!(instance_id = %h, "an address holder that is no instance id; left alone");
                    done.unanswered += 1;
                    None
                }
            })
            .collect();
        let ctx = RequestContext::system();
        for batch in ids.chunks(BATCH) {
            let query = InstanceStatesQuery {
                ids: batch.to_vec(),
            };
            let known = match self.conductor.instance_states(&ctx, &query).await {
                Ok(known) => known,
                Err(e) => {
                    warn!(instances = batch.len(), error = %stratus_rpc::error::error_chain(&e), "could not ask the conductor; keeping their addresses");
                    done.unanswered += batch.len();
                    continue;
                }
            };
            for k in known {
                let Some(state) = k.state.filter(|s| s.is_gone()) else {
                    continue;
                };
                info!(instance_id = %k.instance_id, %state, "releasing the address of a gone instance");
                let request = ReleaseFixedIp {
                    instance_id: k.instance_id,
                };
                match self.manager.release_fixed_ip(&request).await {
                    Ok(()) => done.released += 1,
                    Err(e) => {
                        warn!(instance_id = %k.instance_id, error = %stratus_rpc::error::error_chain(&e), "could not release a gone instance's address")
                    }
                }
            }
        }
        Ok(done)
    }
}
