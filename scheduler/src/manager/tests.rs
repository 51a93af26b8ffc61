//! The manager over the in-process bus, with stand-ins for the conductor and
//! a compute host.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use stratus_rpc::handler::null;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::scheduler::ScheduleRunInstances;
use stratus_rpc::{HandlerError, RequestContext, RpcClient, Transport};
use stratus_test_support::fixtures::{host_report, sized_instance};
use stratus_test_support::stand_in::{self, StandIn};

use super::SchedulerManager;
use crate::config::SchedulerConfig;

/// Keeps the method of every message it is sent.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl StandIn for Recorder {
    fn answer(&self, method: &str, _: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        self.0.lock().expect("lock").push(method.to_owned());
        Ok(null())
    }
}

impl Recorder {
    fn methods(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn a_scheduler_just_started_waits_for_a_first_host_instead_of_failing_the_launch() {
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let conductor = Arc::new(Recorder::default());
    let host = Arc::new(Recorder::default());
    let _servers = [
        bus.serve("conductor", None, stand_in::handler(&conductor))
            .await
            .expect("serve conductor"),
        bus.serve(
            "compute",
            Some(&"host-a".parse().expect("host")),
            stand_in::handler(&host),
        )
        .await
        .expect("serve host"),
    ];
    let config = SchedulerConfig {
        service_down_time_secs: 30,
        ..SchedulerConfig::default()
    };
    let rpc = RpcClient::new(Arc::new(bus), Duration::from_secs(5));
    let manager = Arc::new(SchedulerManager::new(&config, rpc));

    // Restarted: no host has reported yet when the launch arrives.
    let launch = tokio::spawn({
        let manager = manager.clone();
        async move {
            let request = ScheduleRunInstances {
                instances: vec![sized_instance(1, 512, 1)],
            };
            manager
                .run_instance(&RequestContext::system(), request)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!launch.is_finished(), "failed before any host could report");
    manager.update_host(host_report("host-a", "nova", 4, 4096));
    let handed = tokio::time::timeout(Duration::from_secs(5), launch)
        .await
        .expect("placed once a host reported")
        .expect("task");
    assert!(handed.is_ok());
    assert!(
        stratus_test_support::eventually(Duration::from_secs(2), || host.methods()
            == ["run_instance"])
        .await,
        "the host was sent {:?}",
        host.methods()
    );
    assert!(
        conductor.methods().is_empty(),
        "reported: {:?}",
        conductor.methods()
    );
}

#[tokio::test]
async fn a_scheduler_running_longer_than_the_down_time_fails_a_launch_with_no_host_at_once() {
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let conductor = Arc::new(Recorder::default());
    let _server = bus
        .serve("conductor", None, stand_in::handler(&conductor))
        .await
        .expect("serve conductor");
    let config = SchedulerConfig {
        service_down_time_secs: 0,
        ..SchedulerConfig::default()
    };
    let manager = SchedulerManager::new(
        &config,
        RpcClient::new(Arc::new(bus), Duration::from_secs(5)),
    );
    let request = ScheduleRunInstances {
        instances: vec![sized_instance(1, 512, 1)],
    };
    let handled = tokio::time::timeout(
        Duration::from_secs(2),
        manager.run_instance(&RequestContext::system(), request),
    )
    .await
    .expect("answered at once");
    assert!(handled.is_ok());
    assert!(
        stratus_test_support::eventually(Duration::from_secs(2), || conductor.methods()
            == ["instance_update"])
        .await,
        "reported: {:?}",
        conductor.methods()
    );
}
