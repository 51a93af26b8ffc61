//! `stratus bench scale-workers`: many fake-driver compute workers in one
//! process, each as a host of its own would be: its own broker connection,
//! state folder and host name. The scale bench starts a few of these beside
//! one ordinary `stratus compute`, so 100 hosts fit on one machine.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use stratus_compute::config::DriverKind;
use stratus_compute::worker::{Worker, WorkerSetup};
use stratus_host::FakeHost;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{ServerHandle, Transport};

use super::ScaleError;
use crate::config::Config;

/// What `stratus bench scale-workers` hosts.
#[derive(Debug, Clone, Copy, Args)]
pub struct HostRange {
    /// The number of the first host (`node-<first>`).
    #[arg(long)]
    pub first: usize,
    /// How many workers.
    #[arg(long)]
    pub count: usize,
}

/// The name of the `n`th compute host of a scale run.
pub fn host_name(n: usize) -> String {
    format!("node-{n:03}")
}

/// One hosted worker and what keeps it serving.
struct Hosted {
    worker: Worker,
    server: ServerHandle,
    transport: Arc<dyn Transport>,
}

/// Runs workers `node-<first>` … `node-<first + count - 1>` on the fake
/// driver (whatever `[compute] driver` says), under `[node] state_dir`,
/// until SIGTERM or SIGINT, or until the process that started this one
/// is gone.
pub async fn serve(config: &Config, first: usize, count: usize) -> Result<(), ScaleError> {
    let mut compute = config.compute.clone();
    compute.driver = DriverKind::Fake;
    let call_timeout = Duration::from_millis(config.rpc.call_timeout_ms);
    let mut hosted = Vec::with_capacity(count);
    for n in first..first + count {
        let name = host_name(n);
        let host = name.parse::<HostName>().map_err(|e| ScaleError::Setup {
            what: format!("host name {name}"),
            source: e.into(),
        })?;
        let rpc_error = |what: &'static str| {
            move |e: stratus_rpc::RpcError| ScaleError::Setup {
                what: what.into(),
                source: e.into(),
            }
        };
        let transport =
            stratus_rpc::transport::connect(&config.rpc, &format!("stratus-compute@{name}"))
                .await
                .map_err(rpc_error("connecting a worker to the broker"))?;
        let worker = stratus_compute::worker::start(WorkerSetup {
            host: host.clone(),
            state_dir: &config.node.state_dir.join(&name),
            config: &compute,
            vlan_interface: config.network.vlan_interface.clone(),
            transport: transport.clone(),
            call_timeout,
            host_commands: Some(Arc::new(FakeHost::new())),
            driver: None,
            metadata: None,
        })
        .await
        .map_err(|e| ScaleError::Setup {
            what: format!("starting a worker {name}"),
            source: e.into(),
        })?;
        let server = transport
            .serve("compute", Some(&host), worker.service.clone())
            .await
            .map_err(rpc_error("serving compute"))?;
        hosted.push(Hosted {
            worker,
            server,
            transport,
        });
    }
    wait_for_the_end().await?;
    for h in hosted {
        h.worker.periodic.cancel();
        h.server.stop().await;
        h.transport.close().await;
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT, or once this process's parent has gone
/// (a bench killed outright must not leave a hundred workers behind).
async fn wait_for_the_end() -> Result<(), ScaleError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = |e: std::io::Error| ScaleError::Setup {
        what: "installing signal handlers".into(),
        source: e.into(),
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signals)?;
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        () = orphaned => {}
    }
    Ok(())
}
