//! Operator commands: on running services over the broker (host switches),
//! or on the api database of this control host (credentials, images).

use std::time::Duration;

use stratus_rpc::clients::ComputeClient;
use stratus_rpc::config::Backend;
use stratus_rpc::wire::compute::SetHostEnabled;
use stratus_rpc::wire::ids::HostName;
use stratus_rpc::wire::scheduler::HostReport;
use stratus_rpc::{RequestContext, RpcClient, RpcError};

use crate::config::Config;

/// How long an operator waits for a host that does not answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// An operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The services run on the in-process bus of another process.
    #[error(
        "[rpc] backend is \"memory\": the in-process bus of a running all-in-one cannot be reached from another process; point [rpc] at the broker the services use"
    )]
    InProcessBus,
    /// The host name is not one.
    #[error("{0:?} is not a host name: {1}")]
    BadHost(String, String),
    /// The host did not answer or refused.
    #[error("compute host {host}: {source}")]
    Host {
        /// The host.
        host: HostName,
        /// What went wrong.
        #[source]
        source: RpcError,
    },
    /// The broker could not be reached.
    #[error("connecting to the broker: {0}")]
    Connect(#[source] RpcError),
}

/// Asks `host`'s compute worker to stop or resume taking new instances;
/// returns the report it sent the schedulers.
pub async fn set_host_enabled(
    config: &Config,
    host: &str,
    enabled: bool,
    reason: Option<String>,
) -> Result<HostReport, AdminError> {
    if config.rpc.backend == Backend::Memory {
        return Err(AdminError::InProcessBus);
    }
    let host: HostName = host
        .parse()
        .map_err(|e: stratus_rpc::wire::ids::InvalidId| {
            AdminError::BadHost(host.to_owned(), e.to_string())
        })?;
    let transport = stratus_rpc::transport::connect(&config.rpc, "stratus-admin")
        .await
        .map_err(AdminError::Connect)?;
    let compute = ComputeClient::new(RpcClient::new(transport.clone(), ADMIN_TIMEOUT));
    let mut ctx = RequestContext::system();
    ctx.is_admin = true;
    let answer = compute
        .set_host_enabled(&ctx, &host, &SetHostEnabled { enabled, reason })
        .await
        .map_err(|source| AdminError::Host {
            host: host.clone(),
            source,
        });
    transport.close().await;
    answer
}

/// The AWS CLI profile the embedded mode writes.
pub const EMBEDDED_PROFILE: &str = "stratus";

/// In the embedded mode: credentials for project `demo`, user `admin`
/// (created once), written as the AWS CLI profile `stratus` under `$HOME`.
/// Failing here is not fatal: the cloud runs, the user is told why.
pub async fn embedded_profile(
    config: &Config,
    db: &stratus_api::db::Db,
    address: std::net::SocketAddr,
) {
    let credential = match db.credential_for("demo", "admin").await {
        Ok(Some(c)) => c,
        Ok(None) => match stratus_api::admin::create_credentials(db, "demo", "admin", true).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not create the embedded credentials");
                return;
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "could not read the embedded credentials");
            return;
        }
    };
    let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) else {
        tracing::warn!("HOME is not set: no AWS CLI profile written");
        return;
    };
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        address.ip().to_string()
    };
    let endpoint = format!("http://{host}:{}/", address.port());
    match stratus_api::admin::write_aws_profile(
        &home,
        EMBEDDED_PROFILE,
        &credential,
        &config.api.region,
        &endpoint,
    ) {
        Ok(()) => tracing::info!(
            profile = EMBEDDED_PROFILE,
            files = %home.join(".aws").display(),
            "AWS CLI profile written: aws --profile {EMBEDDED_PROFILE} ec2 describe-instances"
        ),
        Err(e) => tracing::warn!(error = %e, "could not write the AWS CLI profile"),
    }
}

/// `stratus credentials create`: a new access key, printed (and written as
/// an AWS CLI profile when asked).
pub async fn create_credentials(
    config: &Config,
    project: &str,
    user: &str,
    admin: bool,
    profile: Option<&str>,
) -> Result<String, Box<dyn std::error::Error>> {
    let db = stratus_api::start::open_db(&config.api, &config.node.state_dir).await?;
    let c = stratus_api::admin::create_credentials(&db, project, user, admin).await?;
    let mut out = format!(
        "project {project}, user {user}{}\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        if admin { " (admin)" } else { "" },
        c.access_key,
        c.secret_key
    );
    if let Some(profile) = profile {
        let home = std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .ok_or("HOME is not set")?;
        stratus_api::admin::write_aws_profile(
            &home,
            profile,
            &c,
            &config.api.region,
            &config.api.endpoint,
        )?;
        out.push_str(&format!(
            "written as AWS CLI profile {profile} in {}\n",
            home.join(".aws").display()
        ));
    }
    Ok(out)
}

/// `stratus image import`: registers public images from files.
pub async fn import_image(
    config: &Config,
    name: &str,
    disk: &std::path::Path,
    kernel: Option<&std::path::Path>,
    ramdisk: Option<&std::path::Path>,
) -> Result<String, Box<dyn std::error::Error>> {
    let db = stratus_api::start::open_db(&config.api, &config.node.state_dir).await?;
    let imported = stratus_api::admin::import_image(&db, name, disk, kernel, ramdisk).await?;
    let mut out = format!("{}\t{name}\n", imported.image_id);
    if let Some(k) = &imported.kernel_id {
        out.push_str(&format!("{k}\t{name}-kernel\n"));
    }
    if let Some(r) = &imported.ramdisk_id {
        out.push_str(&format!("{r}\t{name}-ramdisk\n"));
    }
    Ok(out)
}
