//! The controller's reconcile: addresses of instances the conductor says
//! are gone are released with their DHCP entries; unknown instances and
//! unanswered questions release nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use stratus_host::FakeHost;
use stratus_network::NetworkManager;
use stratus_network::config::NetworkConfig;
use stratus_network::reconcile::{Reconciled, Reconciler};
use stratus_rpc::clients::ConductorClient;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::conductor::{InstanceState, InstanceStatesQuery, KnownInstance};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{HandlerError, RemoteError, RpcClient, Transport};
use stratus_test_support::fixtures;
use stratus_test_support::stand_in::{self, StandIn};

/// The conductor's stand-in: the states it knows, or a failure when `down`.
#[derive(Default)]
struct Conductor {
    states: Mutex<HashMap<InstanceId, InstanceState>>,
    down: Mutex<bool>,
    asked: Mutex<usize>,
}

impl StandIn for Conductor {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        assert_eq!(method, "instance_states");
        *self.asked.lock().expect("lock") += 1;
        if *self.down.lock().expect("lock") {
            return Err(HandlerError::Permanent(RemoteError::new(
                "DatabaseError",
                "down",
            )));
        }
        let query: InstanceStatesQuery = serde_json::from_str(args.get()).expect("query");
        let states = self.states.lock().expect("lock");
        let known: Vec<KnownInstance> = query
            .ids
            .into_iter()
            .map(|id| KnownInstance {
                instance_id: id,
                state: states.get(&id).copied(),
                host: None,
                attempt: 1,
            })
            .collect();
        Ok(serde_json::value::to_raw_value(&known).expect("encode"))
    }
}

/// The DHCP hosts file of the project's network.
fn hosts_file(state: &std::path::Path) -> String {
    std::fs::read_to_string(state.join("networks/br100/0/hosts")).expect("hosts file")
}

/// A network controller on fake host commands, in a folder of its own.
async fn start(config: NetworkConfig) -> (tempfile::TempDir, Arc<NetworkManager>) {
    let state = tempfile::tempdir().expect("tempdir");
    let manager = NetworkManager::start(&config, state.path(), Arc::new(FakeHost::new()))
        .await
        .expect("start");
    (state, Arc::new(manager))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_instances_lose_their_addresses_and_dhcp_entries_and_nothing_else_does() {
    let (state, manager) = start(NetworkConfig {
        fixed_range: "10.6.0.0/24".into(),
        network_size: 64,
        ..NetworkConfig::default()
    })
    .await;
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let conductor = Arc::new(Conductor::default());
    let client = |timeout| ConductorClient::new(RpcClient::new(Arc::new(bus.clone()), timeout));
    let reconciler = Reconciler::new(manager.clone(), client(Duration::from_millis(300)));

    let ids: Vec<InstanceId> = (0..4).map(|_| InstanceId::new()).collect();
    let macs = [
        "02:16:3e:00:00:01",
        "02:16:3e:00:00:02",
        "02:16:3e:00:00:03",
        "02:16:3e:00:00:04",
    ];
    for (id, mac) in ids.iter().zip(macs) {
        manager
            .allocate_fixed_ip(&fixtures::allocate_fixed_ip(*id, "p", mac))
            .await
            .expect("allocate");
    }
    let [terminated, failed, running, unknown] = [ids[0], ids[1], ids[2], ids[3]];
    conductor.states.lock().expect("lock").extend([
        (terminated, InstanceState::Terminated),
        (failed, InstanceState::Error),
        (running, InstanceState::Running),
    ]);

    // No conductor serving: nothing is released.
    let done = reconciler.pass().await.expect("pass");
    assert_eq!(
        done,
        Reconciled {
            held: 4,
            released: 0,
            unanswered: 4
        }
    );

    let _serving = bus
        .serve("conductor", None, stand_in::handler(&conductor))
        .await
        .expect("serve");
    // A failed answer: nothing is released either.
    *conductor.down.lock().expect("lock") = true;
    let done = reconciler.pass().await.expect("pass");
    assert_eq!(
        done,
        Reconciled {
            held: 4,
            released: 0,
            unanswered: 4
        }
    );
    assert_eq!(hosts_file(state.path()).lines().count(), 4);

    *conductor.down.lock().expect("lock") = false;
    let done = reconciler.pass().await.expect("pass");
    assert_eq!(
        done,
        Reconciled {
            held: 4,
            released: 2,
            unanswered: 0
        }
    );
    let store = manager.ipam().store();
    for (id, held) in [
        (terminated, false),
        (failed, false),
        (running, true),
        (unknown, true),
    ] {
        let allocation = store.allocation(&id.to_string()).await.expect("db");
        assert_eq!(allocation.is_some(), held, "{id}");
    }
    let hosts = hosts_file(state.path());
    assert!(
        !hosts.contains(macs[0]) && !hosts.contains(macs[1]),
        "{hosts}"
    );
    assert!(
        hosts.contains(macs[2]) && hosts.contains(macs[3]),
        "{hosts}"
    );

    // Released once: the next pass finds nothing of theirs.
    let done = reconciler.pass().await.expect("pass");
    assert_eq!(
        done,
        Reconciled {
            held: 2,
            released: 0,
            unanswered: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_holders_are_asked_about_in_batches() {
    let (_state, manager) = start(NetworkConfig {
        fixed_range: "10.7.0.0/22".into(),
        network_size: 1024,
        dhcp: false,
        ..NetworkConfig::default()
    })
    .await;
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let conductor = Arc::new(Conductor::default());
    let _serving = bus
        .serve("conductor", None, stand_in::handler(&conductor))
        .await
        .expect("serve");
    for n in 0..450u32 {
        let id = InstanceId::new();
        let mac = format!("02:16:3e:00:{:02x}:{:02x}", n / 256, n % 256);
        manager
            .allocate_fixed_ip(&fixtures::allocate_fixed_ip(id, "p", &mac))
            .await
            .expect("allocate");
        conductor
            .states
            .lock()
            .expect("lock")
            .insert(id, InstanceState::Terminated);
    }
    let reconciler = Reconciler::new(
        manager.clone(),
        ConductorClient::new(RpcClient::new(
            Arc::new(bus.clone()),
            Duration::from_secs(5),
        )),
    );
    let done = reconciler.pass().await.expect("pass");
    assert_eq!(
        done,
        Reconciled {
            held: 450,
            released: 450,
            unanswered: 0
        }
    );
    assert_eq!(*conductor.asked.lock().expect("lock"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_entries_left_by_a_kill_mid_release_are_rewritten_at_start() {
    let state = tempfile::tempdir().expect("tempdir");
    let config = NetworkConfig {
        fixed_range: "10.8.0.0/24".into(),
        network_size: 64,
        ..NetworkConfig::default()
    };
    let manager = NetworkManager::start(&config, state.path(), Arc::new(FakeHost::new()))
        .await
        .expect("start");
    let (kept, released) = (InstanceId::new(), InstanceId::new());
    for (id, mac) in [(kept, "02:16:3e:00:00:01"), (released, "02:16:3e:00:00:02")] {
        manager
            .allocate_fixed_ip(&fixtures::allocate_fixed_ip(id, "p", mac))
            .await
            .expect("allocate");
    }
    // Released in the database, killed before the DHCP update.
    manager
        .ipam()
        .release(&released.to_string())
        .await
        .expect("release");
    assert_eq!(hosts_file(state.path()).lines().count(), 2);
    manager.resync_dhcp().await.expect("resync");
    let hosts = hosts_file(state.path());
    assert_eq!(hosts.lines().count(), 1, "{hosts}");
    assert!(hosts.contains("02:16:3e:00:00:01"), "{hosts}");
}
