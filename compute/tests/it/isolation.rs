//! A worker refuses to start guests where tenant isolation cannot be
//! enforced, saying what is missing; with the operator's explicit insecure
//! switch it goes on (here, to the hypervisor, which this test does not have).

use std::sync::Arc;
use std::time::Duration;

use stratus_compute::config::ComputeConfig;
use stratus_compute::worker::{WorkerError, WorkerSetup, start};
use stratus_host::RealHost;
use stratus_host::isolation;
use stratus_rpc::transport::memory::MemoryTransport;

use stratus_test_support::Netns;

fn set_bridge_nf(ns: &Netns, value: u8) {
    ns.run(
        "sysctl",
        &[
            "-qw",
            &format!("net.bridge.bridge-nf-call-iptables={value}"),
        ],
    );
}

async fn start_in(ns: &Netns, config: &ComputeConfig) -> Result<(), WorkerError> {
    let state = tempfile::tempdir().expect("tempdir");
    start(WorkerSetup {
        host: "isolated".parse().expect("host"),
        state_dir: state.path(),
        config,
        vlan_interface: "eth0".into(),
        transport: Arc::new(MemoryTransport::new(8, Duration::from_millis(100))),
        call_timeout: Duration::from_secs(1),
        host_commands: Some(Arc::new(RealHost::in_netns(ns.name()))),
        driver: None,
        metadata: None,
    })
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_to_start_where_bridge_netfilter_is_off() {
    let ns = Netns::new("lv");
    let config = ComputeConfig {
        // Nothing listens here: a worker that got past the check fails on it.
        libvirt_uri: "qemu:///system?socket=/nonexistent/libvirt-sock".into(),
        ..ComputeConfig::default()
    };

    set_bridge_nf(&ns, 1);
    let gaps = isolation::check(&RealHost::in_netns(ns.name())).await;
    assert!(gaps.is_empty(), "a complete host reported gaps: {gaps}");

    set_bridge_nf(&ns, 0);
    let gaps = isolation::check(&RealHost::in_netns(ns.name())).await;
    assert_eq!(gaps.missing.len(), 1, "{gaps}");
    match start_in(&ns, &config).await {
        Err(WorkerError::Unisolated(gaps)) => {
            let said = WorkerError::Unisolated(gaps).to_string();
            assert!(
                said.contains("net.bridge.bridge-nf-call-iptables is \"0\""),
                "the refusal does not name the missing piece: {said}"
            );
            assert!(said.contains("insecure_allow_unisolated"), "{said}");
        }
        other => panic!("started without isolation: {other:?}"),
    }

    let insecure = ComputeConfig {
        insecure_allow_unisolated: true,
        ..config
    };
    match start_in(&ns, &insecure).await {
        Err(WorkerError::Driver(_)) => {}
        other => panic!("the insecure switch did not get past the check: {other:?}"),
    }
}
