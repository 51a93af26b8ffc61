//! Fixed IP address management: per-project networks cut from the fixed
//! range, and one address per instance, safe under concurrent callers and
//! concurrent controllers sharing a database.

pub mod layout;
pub mod store;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use layout::Layout;
use store::{AllocationRow, Claim, NetworkRow, Store};

use crate::error::NetworkError;

/// Free addresses read per attempt; a random one of them is claimed, so
/// concurrent callers rarely reach for the same address.
const CANDIDATES: i64 = 256;
/// Attempts before giving up under extreme contention.
const MAX_ATTEMPTS: usize = 1000;

/// Allocates networks and addresses.
#[derive(Debug, Clone)]
pub struct Ipam {
    store: Store,
    layout: Layout,
    /// One lock per network: callers in this process take turns picking and
    /// claiming, so they do not race each other for the same address. Other
    /// controllers are kept out by the database's conditional update.
    pickers: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Ipam {
    /// IPAM over `store`, with networks laid out by `layout`.
    pub fn new(store: Store, layout: Layout) -> Self {
        Self {
            store,
            layout,
            pickers: Arc::default(),
        }
    }

    /// The database underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The instance's address: the one it holds, or a new one on its
    /// project's network (created on first use).
    pub async fn allocate(
        &self,
        instance_id: &str,
        project_id: &str,
        mac: &str,
        hostname: &str,
    ) -> Result<AllocationRow, NetworkError> {
        self.allocate_before(instance_id, project_id, mac, hostname, None, None)
            .await
    }

    /// As [`Self::allocate`], refusing to claim a new address once
    /// `deadline_ms` (milliseconds since the epoch) has passed; with
    /// `requested`, the new address is exactly that one or none at all.
    pub async fn allocate_before(
        &self,
        instance_id: &str,
        project_id: &str,
        mac: &str,
        hostname: &str,
        deadline_ms: Option<u64>,
        requested: Option<Ipv4Addr>,
    ) -> Result<AllocationRow, NetworkError> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(held) = self.store.allocation(instance_id).await? {
                return Ok(held);
            }
            let network = self.network_for(project_id).await?;
            let picker = self
                .pickers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(network.slot)
                .or_default()
                .clone();
            let _turn = picker.lock().await;
            // Checked after waiting our turn, where a busy controller spends
            // the time: the caller that gave up has released what it had.
            if let Some(deadline) = deadline_ms {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                if now > deadline {
                    return Err(NetworkError::Expired {
                        instance_id: instance_id.to_owned(),
                        late_ms: now - deadline,
                    });
                }
            }
            let address = match requested {
                Some(wanted) => self.requested(&network, wanted).await?,
                None => self.any_free(&network, project_id).await?,
            };
            let address = &address;
            match self
                .store
                .claim(address, instance_id, mac, hostname)
                .await?
            {
                Claim::Won => {
                    return Ok(AllocationRow {
                        address: address.clone(),
                        network,
                        mac: mac.to_owned(),
                        hostname: hostname.to_owned(),
                    });
                }
                // Lost a race: look again (a concurrent request for the same
                // instance that won is found by the first lookup).
                Claim::Taken | Claim::InstanceHasOne => {}
            }
        }
        Err(NetworkError::Contention {
            instance_id: instance_id.to_owned(),
        })
    }

    /// A random one of the network's free addresses.
    async fn any_free(
        &self,
        network: &NetworkRow,
        project_id: &str,
    ) -> Result<String, NetworkError> {
        let free = self.store.free_addresses(network.slot, CANDIDATES).await?;
        if free.is_empty() {
            return Err(NetworkError::NoMoreFixedIps {
                cidr: network.cidr.clone(),
                project_id: project_id.to_owned(),
            });
        }
        Ok(free[fastrand::usize(..free.len())].clone())
    }

    /// `wanted`, if it is a free instance address of the network: not the
    /// network's own, gateway, DHCP or broadcast address, not outside it,
    /// not held by another instance.
    async fn requested(
        &self,
        network: &NetworkRow,
        wanted: Ipv4Addr,
    ) -> Result<String, NetworkError> {
        let address = wanted.to_string();
        match self.store.holder(network.slot, &address).await? {
            None => Err(NetworkError::FixedIpNotInNetwork {
                address,
                cidr: network.cidr.clone(),
            }),
            Some(Some(_)) => Err(NetworkError::FixedIpTaken {
                address,
                cidr: network.cidr.clone(),
            }),
            Some(None) => Ok(address),
        }
    }

    /// Frees the instance's address; returns what it held, if anything.
    pub async fn release(&self, instance_id: &str) -> Result<Option<AllocationRow>, NetworkError> {
        Ok(self.store.release(instance_id).await?)
    }

    /// The project's network, created in the lowest free slot if it has none
    /// (as its first allocation would): the api's default VPC is this network.
    pub async fn network_for(&self, project_id: &str) -> Result<NetworkRow, NetworkError> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(network) = self.store.project_network(project_id).await? {
                return Ok(network);
            }
            let used = self.store.used_slots().await?;
            let slot = (0..self.layout.slots()).find(|s| used.binary_search(s).is_err());
            let Some(plan) = slot.and_then(|s| self.layout.plan(s)) else {
                return Err(NetworkError::NoMoreNetworks {
                    networks: self.layout.slots(),
                });
            };
            // Losing a race for the slot or the project is fine: look again.
            self.store.create_network(&plan, project_id).await?;
        }
        Err(NetworkError::Contention {
            instance_id: format!("(network of project {project_id})"),
        })
    }
}
