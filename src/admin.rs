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
    #[error("{value:?} is not a host name")]
    BadHost {
        /// What was given.
        value: String,
        /// What is wrong with it.
        #[source]
        source: stratus_rpc::wire::ids::InvalidId,
    },
    /// The host did not answer or refused.
    #[error("compute host {host}")]
    Host {
        /// The host.
        host: HostName,
        /// What went wrong.
        #[source]
        source: RpcError,
    },
    /// The broker could not be reached.
    #[error("connecting to the broker")]
    Connect(#[source] RpcError),
    /// The broker could not be reached to follow the log.
    #[error("connecting to the broker")]
    Tail(#[source] lapin::Error),
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
    let host: HostName = host.parse().map_err(|source| AdminError::BadHost {
        value: host.to_owned(),
        source,
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

/// How long `service list` waits for each service to answer.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

async fn connect_bus(
    config: &Config,
) -> Result<std::sync::Arc<dyn stratus_rpc::Transport>, AdminError> {
    if config.rpc.backend == Backend::Memory {
        return Err(AdminError::InProcessBus);
    }
    stratus_rpc::transport::connect(&config.rpc, "stratus-admin")
        .await
        .map_err(AdminError::Connect)
}

/// `stratus service list`: each service up or down, and each compute host
/// as the schedulers see it (last report, instances, capacity).
pub async fn service_list(config: &Config) -> Result<String, AdminError> {
    let transport = connect_bus(config).await?;
    let rpc = RpcClient::new(transport.clone(), ADMIN_TIMEOUT);
    let ctx = RequestContext::system();
    let mut out = format!(
        "{:<10} {:<20} {:<5} {:>12} {:>9} {:>9} {:>13} {:<10} {}\n",
        "SERVICE",
        "HOST",
        "STATE",
        "LAST REPORT",
        "INSTANCES",
        "VCPUS",
        "MEMORY MB",
        "ZONE",
        "ENABLED"
    );
    for (service, topic) in [
        ("api", "conductor"),
        ("scheduler", "scheduler"),
        ("network", "network"),
    ] {
        let state = match rpc.ping(&ctx, topic, PING_TIMEOUT).await {
            Ok(()) => "up",
            Err(_) => "down",
        };
        out.push_str(&format!("{service:<10} {:<20} {state:<5}\n", "-"));
    }
    let hosts = stratus_rpc::clients::SchedulerClient::new(rpc.clone())
        .list_hosts(&ctx)
        .await;
    match hosts {
        Ok(hosts) => {
            for h in hosts {
                let r = &h.report;
                out.push_str(&format!(
                    "{:<10} {:<20} {:<5} {:>12} {:>9} {:>9} {:>13} {:<10} {}\n",
                    "compute",
                    r.host.as_str(),
                    if h.up { "up" } else { "down" },
                    format!("{} s ago", h.last_report_secs),
                    r.running_instances,
                    format!("{}/{}", r.vcpus_used, r.vcpus),
                    format!("{}/{}", r.memory_mb_used, r.memory_mb),
                    r.availability_zone,
                    if r.enabled {
                        "yes".to_owned()
                    } else {
                        format!(
                            "no ({})",
                            r.disabled_reason.as_deref().unwrap_or("disabled")
                        )
                    }
                ));
            }
        }
        Err(e) => out.push_str(&format!(
            "compute    (no scheduler answered, so no host list: {e})\n"
        )),
    }
    transport.close().await;
    Ok(out)
}

/// `stratus console <instance-id> [--follow]`: the instance's console from
/// its host, as it grows. Reads the api database of this control host to
/// find the host.
pub async fn console(
    config: &Config,
    instance: &str,
    follow: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = stratus_api::start::open_db(&config.api, &config.node.state_dir).await?;
    let transport = connect_bus(config).await?;
    let compute = ComputeClient::new(RpcClient::new(transport.clone(), ADMIN_TIMEOUT));
    let ctx = RequestContext::system();
    let mut shown = String::new();
    loop {
        let row = db.instance_by_ec2_id(instance).await?.ok_or_else(|| {
            format!(
                "no instance {instance} in the api database under {}",
                config.node.state_dir.display()
            )
        })?;
        let (Some(host), Ok(id)) = (row.host.as_deref(), row.uuid.parse()) else {
            if !follow {
                return Err(format!("{instance} has no host yet ({})", row.state).into());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let host: HostName = host.parse().map_err(|source| AdminError::BadHost {
            value: host.to_owned(),
            source,
        })?;
        let text = compute
            .get_console_output(
                &ctx,
                &host,
                stratus_rpc::wire::compute::InstanceRef { instance_id: id },
            )
            .await
            .map_err(|source| AdminError::Host {
                host: host.clone(),
                source,
            })?;
        print!("{}", new_part(&shown, &text));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        shown = text;
        if !follow || row.state.is_gone() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    transport.close().await;
    Ok(())
}

/// What `now` adds to `before`: the host sends the tail of the console, so
/// the two overlap where `before` ends.
fn new_part<'a>(before: &str, now: &'a str) -> &'a str {
    if before.is_empty() {
        return now;
    }
    // The longest suffix of `before` that starts `now`.
    for start in 0..before.len() {
        if !before.is_char_boundary(start) {
            continue;
        }
        if let Some(rest) = now.strip_prefix(&before[start..]) {
            return rest;
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::new_part;

    #[test]
    fn only_what_the_console_added_is_printed() {
        assert_eq!(new_part("", "abc"), "abc");
        assert_eq!(
            new_part("line1\nline2\n", "line1\nline2\nline3\n"),
            "line3\n"
        );
        // The host sent only the tail: it overlaps the end of what we have.
        assert_eq!(new_part("a\nb\nc\n", "c\nd\n"), "d\n");
        assert_eq!(new_part("same", "same"), "");
    }
}

fn severity(level: &str) -> Option<u8> {
    match level.to_ascii_lowercase().as_str() {
        "trace" => Some(0),
        "debug" => Some(1),
        "info" => Some(2),
        "warn" => Some(3),
        "error" => Some(4),
        _ => None,
    }
}

/// One shipped JSON line as a readable one, if it passes the filters.
pub fn tail_line(json: &str, instance: Option<&str>, min_level: u8) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(json).ok()?;
    let level = event["level"].as_str().unwrap_or("INFO");
    if severity(level).unwrap_or(2) < min_level {
        return None;
    }
    if let Some(wanted) = instance {
        // An `i-…` id is the first 17 hex digits of the UUID spans carry.
        let digits: String = json.chars().filter(|c| *c != '-').collect();
        let key: String = wanted
            .trim_start_matches("i-")
            .chars()
            .filter(|c| *c != '-')
            .collect();
        if !digits.contains(&key) {
            return None;
        }
    }
    let fields = event["fields"].as_object();
    let message = fields
        .and_then(|f| f.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let mut extra: Vec<String> = Vec::new();
    for source in [event["span"].as_object(), fields] {
        for (k, v) in source.into_iter().flatten() {
            if k == "message" || k == "name" {
                continue;
            }
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            extra.push(format!("{k}={v}"));
        }
    }
    Some(format!(
        "{} {level:>5} {}: {message} {}",
        event["timestamp"].as_str().unwrap_or(""),
        event["target"].as_str().unwrap_or(""),
        extra.join(" ")
    ))
}

/// `stratus tail`: a compute host's log lines (or every host's) as they come.
pub async fn tail(
    config: &Config,
    host: Option<&str>,
    all: bool,
    instance: Option<&str>,
    level: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use futures::StreamExt;
    if config.rpc.backend == Backend::Memory {
        return Err(AdminError::InProcessBus.into());
    }
    let min_level = severity(level)
        .ok_or_else(|| format!("level {level:?}: use trace, debug, info, warn or error"))?;
    let host: Option<HostName> = match (host, all) {
        (_, true) | (None, _) => None,
        (Some(h), false) => Some(h.parse().map_err(|source| AdminError::BadHost {
            value: h.to_owned(),
            source,
        })?),
    };
    let lines = stratus_rpc::logs::tail(&config.rpc, host.as_ref())
        .await
        .map_err(AdminError::Tail)?;
    futures::pin_mut!(lines);
    while let Some(line) = lines.next().await {
        if let Some(text) = tail_line(&line, instance, min_level) {
            println!("{text}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tail_tests {
    use super::tail_line;

    #[test]
    fn shipped_lines_are_filtered_by_instance_and_level() {
        let line = r#"{"timestamp":"2026-11-22T06:00:00Z","level":"INFO","fields":{"message":"state change","state":"Running"},"target":"stratus_compute::manager","span":{"instance_id":"6becc860-51c2-4882-91fa-5b3495e4f3f4","name":"run_instance"}}"#;
        let shown = tail_line(line, Some("i-6becc86051c248829"), 0).expect("matches");
        assert!(
            shown.contains("INFO stratus_compute::manager: state change"),
            "{shown}"
        );
        assert!(
            shown.contains("state=Running") && shown.contains("instance_id=6becc860"),
            "{shown}"
        );
        assert!(tail_line(line, Some("i-00000000000000000"), 0).is_none());
        assert!(tail_line(line, None, 3).is_none(), "INFO is below warn");
        assert!(tail_line("not json", None, 0).is_none());
    }
}
