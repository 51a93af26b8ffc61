//! A stand-in network host on the endpoint's bus, for every test that needs
//! one: it answers `project_network` with a /24 per project (the `n`-th
//! project asked gets 10.1.n.0/24) and counts the asks, and keeps each
//! `map_public_addresses` it is sent, refusing them while `failing`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use stratus_rpc::handler::null;
use stratus_rpc::wire::addresses::MapPublicAddresses;
use stratus_rpc::wire::network::{GetProjectNetwork, ProjectNetwork};
use stratus_rpc::{HandlerError, RemoteError, ServerHandle, Transport};
use stratus_test_support::stand_in::{self, StandIn};

use super::Endpoint;

/// Stands in for the network host.
#[derive(Default)]
pub struct Network {
    /// Each project's network, in the order first asked.
    pub networks: Mutex<HashMap<String, ProjectNetwork>>,
    /// How many `project_network` calls came.
    pub asks: Mutex<usize>,
    /// The public address changes received (refused ones too), in order.
    pub maps: Mutex<Vec<MapPublicAddresses>>,
    /// Answer every public address change with an error.
    pub failing: AtomicBool,
}

impl StandIn for Network {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        match method {
            "project_network" => {
                let request: GetProjectNetwork =
                    serde_json::from_str(args.get()).expect("the api sends a project");
                let network = self.network_of(&request.project_id.to_string());
                Ok(serde_json::value::to_raw_value(&network).expect("encode"))
            }
            "map_public_addresses" => {
                let map = serde_json::from_str(args.get()).expect("the api sends a change");
                self.maps.lock().expect("lock").push(map);
                if self.failing.load(Ordering::SeqCst) {
                    return Err(HandlerError::Permanent(RemoteError::new(
                        "IptablesFailed",
                        "iptables-restore failed",
                    )));
                }
                Ok(null())
            }
            _ => Ok(null()),
        }
    }
}

impl Network {
    /// The project's network, made on its first ask; the ask counted.
    fn network_of(&self, project: &str) -> ProjectNetwork {
        *self.asks.lock().expect("lock") += 1;
        let mut networks = self.networks.lock().expect("lock");
        let n = networks.len();
        networks
            .entry(project.to_owned())
            .or_insert_with(|| ProjectNetwork {
                cidr: format!("10.1.{n}.0/24"),
                gateway: format!("10.1.{n}.1"),
            })
            .clone()
    }

    /// How many `project_network` calls came.
    pub fn asks(&self) -> usize {
        *self.asks.lock().expect("lock")
    }

    /// The public address changes received so far.
    pub fn maps(&self) -> Vec<MapPublicAddresses> {
        self.maps.lock().expect("lock").clone()
    }

    /// Waits (up to 10 s) for a change that `want` accepts (background
    /// pushes arrive after the request that made them is answered).
    pub async fn wait_for(&self, want: impl Fn(&MapPublicAddresses) -> bool) -> MapPublicAddresses {
        for _ in 0..500 {
            if let Some(found) = self.maps().into_iter().find(|m| want(m)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no change as wanted among {:?}", self.maps());
    }

    /// Waits (up to 10 s) until `n` changes arrived.
    pub async fn settled(&self, n: usize) {
        for _ in 0..500 {
            if self.maps().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} changes: {:?}", self.maps());
    }
}

/// An endpoint with the stand-in network host serving on its bus.
pub struct WithNetwork {
    pub endpoint: Endpoint,
    pub network: Arc<Network>,
    serving: Option<ServerHandle>,
}

impl std::ops::Deref for WithNetwork {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl WithNetwork {
    /// The endpoint with default settings.
    pub async fn start() -> Self {
        Self::serving(Endpoint::start().await).await
    }

    /// `endpoint` with the stand-in network host on its bus.
    pub async fn serving(endpoint: Endpoint) -> Self {
        let network = Arc::new(Network::default());
        let serving = endpoint
            .bus
            .serve("network", None, stand_in::handler(&network))
            .await
            .expect("serve the network topic");
        Self {
            endpoint,
            network,
            serving: Some(serving),
        }
    }

    /// Takes the network host off the bus: nothing answers it any more.
    pub fn stop_network(&mut self) {
        self.serving = None;
    }
}
