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

    /// Its topic and the methods served there.
    fn topic(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::Api => (conductor::TOPIC, conductor::methods::ALL),
            Self::Scheduler => (scheduler::TOPIC, scheduler::methods::ALL),
            Self::Compute => (compute::TOPIC, compute::methods::ALL),
            Self::Network => (network::TOPIC, network::methods::ALL),
        }
    }

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
    #[error("network controller")]
    Network(#[from] stratus_network::NetworkError),
    /// The api service could not start.
    #[error("api")]
    Api(#[from] stratus_api::start::StartError),
    /// The compute worker could not reach its hypervisor.
    #[error("compute worker")]
    Compute(#[from] stratus_compute::worker::WorkerError),
    /// The network namespace could not be prepared.
    #[error("network namespace")]
    Netns(#[source] stratus_host::CommandError),
    /// The namespace's public link (the veth pair from the host) could not
    /// be made.
    #[error("the public link of network namespace {netns}")]
    PublicLink {
        /// The namespace.
        netns: String,
        /// Why.
        #[source]
        source: stratus_host::CommandError,
    },
    /// The private libvirtd could not be started.
    #[error("libvirtd")]
    Libvirtd(#[source] stratus_compute::host::libvirtd::LibvirtdError),
    /// The task starting the private libvirtd failed.
    #[error("libvirtd")]
    LibvirtdTask(#[source] tokio::task::JoinError),
    /// The metrics endpoint could not listen.
    #[error("metrics on {address}")]
    Metrics {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for a shutdown signal failed.
    #[error("installing signal handlers")]
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
    let netns = match (&config.node.netns, host_network) {
        (_, true) => None,
        (Some(netns), false) => Some(netns.clone()),
        (None, false) => Some("stratus".to_owned()),
    };
    let config = embedded_config(config, netns.as_deref());
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
    } else if services.len() > 1 {
        // The all-in-one's terminal shows no log lines: say it serves.
        crate::demo::serving_only(config);
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
    let mut after_serving = Vec::new();
    for service in services {
        let (server, after) =
            start(config, *service, &host, &transport, services.len() > 1).await?;
        servers.push(server);
        after_serving.extend(after);
    }
    // Work that asks other services (the api's recovery, the network
    // controller's reconcile) starts once every service here serves.
    for work in after_serving {
        tokio::spawn(work);
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

/// Work a service runs in the background once it serves.
type AfterServing = futures::future::BoxFuture<'static, ()>;

/// Starts `service` on `transport` and serves its topics; what it runs in
/// the background once every service of this process serves.
async fn start(
    config: &Config,
    service: Service,
    host: &HostName,
    transport: &Arc<dyn Transport>,
    embedded: bool,
) -> Result<(ServerHandle, Option<AfterServing>), ServiceError> {
    let rpc = stratus_rpc::RpcClient::new(
        transport.clone(),
        std::time::Duration::from_millis(config.rpc.call_timeout_ms),
    );
    // The api's recovery casts builds that hosts claim from the conductor,
    // the network's reconcile asks it: both wait until it serves.
    let mut after: Option<AfterServing> = None;
    let handler: Arc<dyn Handler> = match service {
        Service::Api => {
            let api = start_api(config, rpc, embedded).await?;
            after = Some(Box::pin(api.recovery.run()));
            api.conductor
        }
        Service::Scheduler => Arc::new(stratus_scheduler::service::SchedulerService::new(
            &config.scheduler,
            rpc,
        )),
        Service::Compute => start_compute(config, host, transport).await?,
        Service::Network => {
            let (handler, reconcile) = start_network(config, rpc).await?;
            after = Some(reconcile);
            handler
        }
    };
    let (topic, methods) = service.topic();
    // Only a compute worker has a queue of its own host's.
    let per_host = service == Service::Compute;
    let server = transport
        .serve(topic, per_host.then_some(host), handler)
        .await?;
    let queues = if per_host {
        format!("{topic}, {topic}.{host} and the {topic} fanout")
    } else {
        format!("{topic} and the {topic} fanout")
    };
    info!(service = service.name(), methods = %methods.join(", "), "serving {queues}");
    Ok((server, after))
}

/// The api service, started.
async fn start_api(
    config: &Config,
    rpc: stratus_rpc::RpcClient,
    embedded: bool,
) -> Result<stratus_api::start::Api, ServiceError> {
    let api = stratus_api::start::start(&config.api, &config.node.state_dir, rpc).await?;
    if embedded {
        crate::admin::embedded_profile(config, &api.cloud.db, api.ec2_address).await;
    }
    Ok(api)
}

/// This host's compute worker; its handler.
async fn start_compute(
    config: &Config,
    host: &HostName,
    transport: &Arc<dyn Transport>,
) -> Result<Arc<dyn Handler>, ServiceError> {
    let mut compute = config.compute.clone();
    let (host_commands, metadata): (Option<Arc<dyn stratus_host::HostCommands>>, _) =
        match &config.node.netns {
            // Guests, their bridge and libvirtd live in the namespace,
            // where the metadata address is local: no DNAT.
            Some(netns) => {
                let inside = stratus_host::netns::prepare(netns)
                    .await
                    .map_err(ServiceError::Netns)?;
                if let Some(uri) = private_libvirtd(config, netns).await? {
                    compute.libvirt_uri = uri;
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
    Ok(worker.service)
}

/// For a libvirt worker in `netns` with the default URI, the URI of the
/// libvirtd it shares in that namespace (started if need be). An explicitly
/// configured URI wins: hosts sharing a daemon (tests of several workers on
/// one machine).
async fn private_libvirtd(config: &Config, netns: &str) -> Result<Option<String>, ServiceError> {
    let compute = &config.compute;
    let default_uri = stratus_compute::config::ComputeConfig::default().libvirt_uri;
    if compute.driver != stratus_compute::config::DriverKind::Libvirt
        || compute.libvirt_uri != default_uri
    {
        return Ok(None);
    }
    let dir = config.node.state_dir.join("libvirt");
    let netns = netns.to_owned();
    let daemon = tokio::task::spawn_blocking(move || {
        stratus_compute::host::libvirtd::PrivateLibvirtd::shared(&netns, &dir)
    })
    .await
    .map_err(ServiceError::LibvirtdTask)?
    .map_err(ServiceError::Libvirtd)?;
    info!(uri = daemon.uri(), "libvirtd in the network namespace");
    Ok(Some(daemon.uri().to_owned()))
}

/// The network controller; its handler and its reconcile of addresses.
async fn start_network(
    config: &Config,
    rpc: stratus_rpc::RpcClient,
) -> Result<(Arc<dyn Handler>, AfterServing), ServiceError> {
    let host_commands = match &config.node.netns {
        Some(netns) => {
            let inside = stratus_host::netns::prepare(netns)
                .await
                .map_err(ServiceError::Netns)?;
            // Before the controller starts, so it finds its public
            // interface there rather than making a dummy of that name.
            link_public(config, netns).await?;
            inside
        }
        None => stratus_host::RealHost::new(),
    };
    let manager = stratus_network::NetworkManager::start(
        &config.network,
        &config.node.state_dir,
        Arc::new(host_commands),
    )
    .await?;
    let manager = Arc::new(manager);
    let reconciler = stratus_network::reconcile::Reconciler::new(
        manager.clone(),
        stratus_rpc::clients::ConductorClient::new(rpc),
    );
    let every = std::time::Duration::from_secs(config.network.reconcile_interval_secs);
    Ok((
        Arc::new(stratus_network::service::NetworkService::new(manager)),
        Box::pin(reconciler.run(every)),
    ))
}

/// Joins `netns` to the host by its public link, when the cloud has a
/// public range: the host's end holds the range's gateway, so the host
/// reaches mapped public addresses from its own shell.
async fn link_public(config: &Config, netns: &str) -> Result<(), ServiceError> {
    let Some(public) = &config.api.public else {
        return Ok(());
    };
    let Some(gateway) = stratus_rpc::wire::addresses::public_gateway(&public.range) else {
        return Ok(());
    };
    // Never fails: the prefix is the range's own.
    let Ok(gateway) = ipnet::Ipv4Net::new(gateway, public.range.prefix_len()) else {
        return Ok(());
    };
    let host_end =
        stratus_host::netns::link_public(netns, &config.network.public_interface, gateway)
            .await
            .map_err(|source| ServiceError::PublicLink {
                netns: netns.to_owned(),
                source,
            })?;
    info!(%netns, %host_end, %gateway, "public link from the host");
    Ok(())
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
