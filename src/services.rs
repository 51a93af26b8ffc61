//! Starting services: connect the bus, serve each service's topics, and run
//! until Ctrl-C or SIGTERM.

use std::sync::Arc;

use stratus_rpc::clients::{compute, conductor, network, scheduler};
use stratus_rpc::config::Backend;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::{Handler, RpcError, ServerHandle, Transport};
use tracing::info;

use crate::config::{Config, ConfigError};

/// A service that `stratus <service>` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The api service: the EC2 API, the metadata service, the conductor topic.
    Api,
    /// The scheduler.
    Scheduler,
    /// A compute worker.
    Compute,
    /// The network controller.
    Network,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 4] = [Self::Network, Self::Scheduler, Self::Compute, Self::Api];

    fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Scheduler => "scheduler",
            Self::Compute => "compute",
            Self::Network => "network",
        }
    }
}

/// Why a service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The bus could not be reached or a consumer not started.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The network controller could not start.
    #[error("network controller: {0}")]
    Network(#[from] stratus_network::NetworkError),
    /// The api service could not start.
    #[error("api: {0}")]
    Api(#[from] stratus_api::start::StartError),
    /// The compute worker could not reach its hypervisor.
    #[error("compute worker: {0}")]
    Compute(#[from] stratus_compute::worker::WorkerError),
    /// The network namespace could not be prepared.
    #[error("network namespace: {0}")]
    Netns(#[source] stratus_host::CommandError),
    /// The private libvirtd could not be started.
    #[error("libvirtd: {0}")]
    Libvirtd(String),
    /// The metrics endpoint could not listen.
    #[error("metrics on {address}: {source}")]
    Metrics {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for a shutdown signal failed.
    #[error("installing signal handlers: {0}")]
    Signal(#[source] std::io::Error),
}

/// `stratus all-in-one`: every service on the in-process bus, guest
/// networking in the `stratus` namespace unless `host_network`, and the
/// demo guest unless `demo` is false.
pub async fn all_in_one(
    config: &Config,
    host_network: bool,
    demo: bool,
) -> Result<(), ServiceError> {
    let mut config = config.clone();
    if host_network {
        config.node.netns = None;
    } else if config.node.netns.is_none() {
        config.node.netns = Some("stratus".to_owned());
    }
    if let Some(netns) = &config.node.netns {
        config.api.metadata_netns = Some(netns.clone());
        config.api.metadata_listen = format!("{}:80", stratus_host::netns::METADATA_ADDRESS);
    }
    run_with(&config, &Service::ALL, demo).await
}

/// Runs `services` in this process until interrupted. With more than one
/// service (all-in-one) they share the in-process bus.
pub async fn run(config: &Config, services: &[Service]) -> Result<(), ServiceError> {
    run_with(config, services, false).await
}

async fn run_with(config: &Config, services: &[Service], demo: bool) -> Result<(), ServiceError> {
    // Installed first, so a signal that comes as soon as messages flow is ours.
    let shutdown = shutdown_signal().map_err(ServiceError::Signal)?;
    let running = start_services(config, services).await?;
    if demo {
        let config = config.clone();
        tokio::spawn(async move { crate::demo::run(&config).await });
    }
    shutdown.await.map_err(ServiceError::Signal)?;
    running.stop().await;
    Ok(())
}

/// Services serving in this process.
pub struct Running {
    servers: Vec<ServerHandle>,
    transport: Arc<dyn Transport>,
}

impl Running {
    /// Waits for running handlers, then closes the bus.
    pub async fn stop(self) {
        info!("stopping: waiting for running handlers");
        for server in self.servers {
            server.stop().await;
        }
        self.transport.close().await;
    }
}

/// Starts `services` in this process (sharing the in-process bus when more
/// than one) and returns once they serve.
pub async fn start_services(
    config: &Config,
    services: &[Service],
) -> Result<Running, ServiceError> {
    let host = config.node.host_name()?;
    let transport: Arc<dyn Transport> =
        if services.len() > 1 || config.rpc.backend == Backend::Memory {
            Arc::new(MemoryTransport::new(
                config.rpc.prefetch,
                std::time::Duration::from_millis(config.rpc.retry_delay_ms),
            ))
        } else {
            let name = format!(
                "stratus-{}@{host}",
                services.first().map_or("", |s| s.name())
            );
            stratus_rpc::transport::connect(&config.rpc, &name).await?
        };
    let mut servers = Vec::new();
    for service in services {
        servers.extend(start(config, *service, &host, &transport, services.len() > 1).await?);
    }
    if let Some(listen) = &config.metrics.listen {
        serve_metrics(listen).await?;
    }
    info!(%host, "ready; Ctrl-C or SIGTERM stops");
    Ok(Running { servers, transport })
}

/// The all-in-one's configuration: guest networking in `netns` (or on the
/// host when none), the metadata service where the guests are.
pub fn embedded_config(config: &Config, netns: Option<&str>) -> Config {
    let mut config = config.clone();
    config.node.netns = netns.map(str::to_owned);
    if let Some(netns) = netns {
        config.api.metadata_netns = Some(netns.to_owned());
        config.api.metadata_listen = format!("{}:80", stratus_host::netns::METADATA_ADDRESS);
    }
    config
}

async fn start(
    config: &Config,
    service: Service,
    host: &HostName,
    transport: &Arc<dyn Transport>,
    embedded: bool,
) -> Result<Vec<ServerHandle>, ServiceError> {
    let (topic, methods, handler, per_host): (&str, &[&str], Arc<dyn Handler>, bool) = match service
    {
        Service::Api => (
            conductor::TOPIC,
            conductor::methods::ALL,
            {
                let api = stratus_api::start::start(
                    &config.api,
                    &config.node.state_dir,
                    stratus_rpc::RpcClient::new(
                        transport.clone(),
                        std::time::Duration::from_millis(config.rpc.call_timeout_ms),
                    ),
                )
                .await?;
                if embedded {
                    crate::admin::embedded_profile(config, &api.cloud.db, api.ec2_address).await;
                }
                api.conductor
            },
            false,
        ),
        Service::Scheduler => (
            scheduler::TOPIC,
            scheduler::methods::ALL,
            Arc::new(stratus_scheduler::service::SchedulerService::new(
                &config.scheduler,
                stratus_rpc::RpcClient::new(
                    transport.clone(),
                    std::time::Duration::from_millis(config.rpc.call_timeout_ms),
                ),
            )),
            false,
        ),
        Service::Compute => (
            compute::TOPIC,
            compute::methods::ALL,
            {
                let mut compute = config.compute.clone();
                let (host_commands, metadata): (Option<Arc<dyn stratus_host::HostCommands>>, _) =
                    match &config.node.netns {
                        // Guests, their bridge and libvirtd live in the namespace,
                        // where the metadata address is local: no DNAT.
                        Some(netns) => {
                            let inside = stratus_host::netns::prepare(netns)
                                .await
                                .map_err(ServiceError::Netns)?;
                            // An explicitly configured URI wins: hosts sharing a
                            // daemon (tests of several workers on one machine).
                            let default_uri =
                                stratus_compute::config::ComputeConfig::default().libvirt_uri;
                            if compute.driver == stratus_compute::config::DriverKind::Libvirt
                                && compute.libvirt_uri == default_uri
                            {
                                let dir = config.node.state_dir.join("libvirt");
                                let netns = netns.clone();
                                let daemon = tokio::task::spawn_blocking(move || {
                                    stratus_compute::host::libvirtd::PrivateLibvirtd::shared(
                                        &netns, &dir,
                                    )
                                })
                                .await
                                .map_err(|e| ServiceError::Libvirtd(e.to_string()))?
                                .map_err(|e| ServiceError::Libvirtd(e.to_string()))?;
                                info!(uri = daemon.uri(), "libvirtd in the network namespace");
                                compute.libvirt_uri = daemon.uri().to_owned();
                            }
                            (Some(Arc::new(inside)), None)
                        }
                        None => (
                            None,
                            config
                                .network
                                .metadata_host
                                .map(|h| (h, config.network.metadata_port)),
                        ),
                    };
                let worker = stratus_compute::worker::start(stratus_compute::worker::WorkerSetup {
                    host: host.clone(),
                    state_dir: &config.node.state_dir,
                    config: &compute,
                    vlan_interface: config.network.vlan_interface.clone(),
                    transport: transport.clone(),
                    call_timeout: std::time::Duration::from_millis(config.rpc.call_timeout_ms),
                    host_commands,
                    driver: None,
                    metadata,
                })
                .await?;
                worker.service
            },
            true,
        ),
        Service::Network => (
            network::TOPIC,
            network::methods::ALL,
            {
                let host_commands = match &config.node.netns {
                    Some(netns) => stratus_host::netns::prepare(netns)
                        .await
                        .map_err(ServiceError::Netns)?,
                    None => stratus_host::RealHost::new(),
                };
                let manager = stratus_network::NetworkManager::start(
                    &config.network,
                    &config.node.state_dir,
                    Arc::new(host_commands),
                )
                .await?;
                Arc::new(stratus_network::service::NetworkService::new(Arc::new(
                    manager,
                )))
            },
            false,
        ),
    };
    let server = transport
        .serve(topic, per_host.then_some(host), handler)
        .await?;
    let queues = if per_host {
        format!("{topic}, {topic}.{host} and the {topic} fanout")
    } else {
        format!("{topic} and the {topic} fanout")
    };
    info!(service = service.name(), methods = %methods.join(", "), "serving {queues}");
    Ok(vec![server])
}

/// Serves `GET /metrics` (OpenMetrics text) on `listen` until the process ends.
async fn serve_metrics(listen: &str) -> Result<(), ServiceError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServiceError::Metrics {
            address: listen.to_owned(),
            source,
        })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                stratus_rpc::metrics::encode(),
            )
        }),
    );
    info!(address = %listen, "metrics at /metrics");
    // A scraper that stalls must not hold connections either.
    tokio::spawn(stratus_api::serve::serve(
        listener,
        app,
        std::time::Duration::from_secs(30),
    ));
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}
