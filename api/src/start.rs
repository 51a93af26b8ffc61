//! Starting the api service: its database, the EC2 endpoint, the metadata
//! service, and the conductor handler the caller serves on the bus.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use stratus_rpc::RpcClient;
use stratus_rpc::clients::{ComputeClient, NetworkClient};
use stratus_rpc::wire::conductor::InstanceState;
use tracing::info;

use crate::app::instances::recovery::Recovery;
use crate::conductor::Conductor;
use crate::config::ApiConfig;
use crate::db::{Db, DbError};
use crate::ec2::Cloud;
use crate::metadata::db_source::DbSource;
use crate::service::ConductorService;

/// A running api service.
#[derive(Debug)]
pub struct Api {
    /// The cloud controller.
    pub cloud: Arc<Cloud>,
    /// The handler for the `conductor` topic.
    pub conductor: Arc<ConductorService>,
    /// Where the EC2 API listens.
    pub ec2_address: SocketAddr,
    /// Where the metadata service listens.
    pub metadata_address: SocketAddr,
    /// What picks up unfinished launches, terminates and stops: the caller
    /// runs it once the conductor serves (hosts claim the builds it
    /// re-casts from the conductor).
    pub recovery: Recovery,
}

/// The api service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A listening socket.
    #[error("listening on {address}")]
    Listen {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The database URL: `[api] database_url`, else a SQLite file in `state_dir`.
pub fn database_url(config: &ApiConfig, state_dir: &Path) -> String {
    config.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            state_dir.join("api.sqlite").display()
        )
    })
}

/// Opens the database (creating the state folder for SQLite).
pub async fn open_db(config: &ApiConfig, state_dir: &Path) -> Result<Db, StartError> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(state_dir).map_err(|source| StartError::Listen {
            address: state_dir.display().to_string(),
            source,
        })?;
    }
    Ok(Db::connect(&database_url(config, state_dir)).await?)
}

async fn listen(address: &str) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Listen {
            address: address.to_owned(),
            source,
        })
}

/// Opens the database and starts both HTTP services in the background.
pub async fn start(
    config: &ApiConfig,
    state_dir: &Path,
    rpc: RpcClient,
) -> Result<Api, StartError> {
    let db = open_db(config, state_dir).await?;
    let cloud = Arc::new(Cloud::new(db.clone(), config.clone(), rpc.clone()));

    let ec2 = listen(&config.listen).await?;
    let ec2_address = ec2.local_addr().map_err(|source| StartError::Listen {
        address: config.listen.clone(),
        source,
    })?;
    let app = crate::ec2::server::router(cloud.clone());
    let read_timeout = std::time::Duration::from_secs(config.read_timeout_secs.max(1));
    tokio::spawn(crate::serve::serve(ec2, app, read_timeout));
    info!(address = %ec2_address, "EC2 API listening");

    let metadata = match &config.metadata_netns {
        Some(netns) => crate::netns::bind_in(netns, &config.metadata_listen)
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|source| StartError::Listen {
                address: format!("{} in network namespace {netns}", config.metadata_listen),
                source,
            })?,
        None => listen(&config.metadata_listen).await?,
    };
    let metadata_address = metadata.local_addr().map_err(|source| StartError::Listen {
        address: config.metadata_listen.clone(),
        source,
    })?;
    let state = crate::metadata::server::Metadata::new(
        Arc::new(
            DbSource::new(db.clone())
                .with_dns_domain(config.public.as_ref().map(|p| p.dns_domain.clone())),
        ),
        config.metadata_require_token,
    );
    let app = crate::metadata::server::router(state);
    tokio::spawn(crate::serve::serve(metadata, app, read_timeout));
    info!(address = %metadata_address, "metadata service listening");

    tokio::spawn(count_instances(db.clone()));
    tokio::spawn(crate::app::instances::build_timeout::run(
        db.clone(),
        std::time::Duration::from_secs(config.build_timeout_secs),
    ));
    let conductor = Arc::new(ConductorService::new(
        Conductor::new(db, ComputeClient::new(rpc.clone())).with_network(NetworkClient::new(rpc)),
    ));
    let recovery = Recovery::new(
        cloud.clone(),
        std::time::Duration::from_secs(config.recast_unplaced_secs),
    );
    Ok(Api {
        cloud,
        conductor,
        recovery,
        ec2_address,
        metadata_address,
    })
}

/// Keeps the instances-by-state gauge current (every five seconds).
async fn count_instances(db: Db) {
    loop {
        match db.count_by_state().await {
            Ok(counts) => {
                let gauges = &stratus_rpc::metrics::metrics().instances;
                for state in InstanceState::ALL {
                    let n = counts
                        .iter()
                        .find(|(s, _)| *s == state)
                        .map_or(0, |(_, n)| *n);
                    gauges
                        .get_or_create(&stratus_rpc::metrics::labels(&[("state", state.name())]))
                        .set(n);
                }
            }
            Err(e) => {
                tracing::warn!(error = %stratus_rpc::error::error_chain(&e), "counting instances for the metrics")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
