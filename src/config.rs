//! The one configuration file (TOML) and its `STRATUS_<SECTION>__<FIELD>`
//! environment overrides.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use stratus_rpc::RpcConfig;
use stratus_rpc::wire::ids::HostName;

/// Where the configuration is read from unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/stratus/stratus.toml";

/// Everything stratus reads from its configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This machine's identity and where it keeps state.
    pub node: NodeConfig,
    /// Log format and verbosity.
    pub log: LogConfig,
    /// The message bus.
    pub rpc: RpcConfig,
    /// The EC2 API service and its conductor.
    pub api: stratus_api::config::ApiConfig,
    /// The scheduler.
    pub scheduler: stratus_scheduler::config::SchedulerConfig,
    /// The compute worker.
    pub compute: stratus_compute::config::ComputeConfig,
    /// The network controller.
    pub network: stratus_network::config::NetworkConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
}

/// Where this process serves its Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port` for `GET /metrics`; unset serves none. Give each
    /// service on one machine a port of its own.
    pub listen: Option<String>,
}

/// This machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The host name services on this machine use in `<topic>.<host>`
    /// queues and logs. Unset: the machine's host name.
    pub host: Option<HostName>,
    /// Where stratus keeps its files (database, instances, images).
    pub state_dir: PathBuf,
    /// Keep guest networking (bridges, dnsmasq, iptables, libvirtd and the
    /// metadata service) in this network namespace, made if missing, so the
    /// host's own network is never touched. `stratus all-in-one` uses
    /// `stratus` unless given `--host-network`.
    pub netns: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            host: None,
            state_dir: PathBuf::from("/var/lib/stratus"),
            netns: None,
        }
    }
}

impl NodeConfig {
    /// The configured host name, else the machine's.
    pub fn host_name(&self) -> Result<HostName, ConfigError> {
        if let Some(host) = &self.host {
            return Ok(host.clone());
        }
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map_err(ConfigError::HostNameUnread)?;
        let name = raw.trim();
        name.parse().map_err(|source| ConfigError::HostName {
            value: name.to_owned(),
            source,
        })
    }
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` (readable lines) or `json` (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,stratus_rpc=debug`;
    /// `RUST_LOG`, when set, wins.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            // lapin logs a normal connection close as an error; stratus logs
            // connection failures itself.
            filter: "info,lapin=off".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines with spans.
    Human,
    /// One JSON object per event.
    Json,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing, or a value in it or in the environment is wrong.
    #[error("configuration {path}")]
    Invalid {
        /// The file read (or that would have been read).
        path: PathBuf,
        /// What is wrong, with the key.
        #[source]
        source: Box<figment::Error>,
    },
    /// A value parses but cannot work.
    #[error("configuration {path}")]
    Setting {
        /// The file read.
        path: PathBuf,
        /// What is wrong, with the key.
        #[source]
        source: stratus_scheduler::config::ConfigError,
    },
    /// The machine's host name could not be read.
    #[error("reading this machine's host name (set [node] host)")]
    HostNameUnread(#[source] std::io::Error),
    /// No usable host name.
    #[error("host name {value:?} (set [node] host)")]
    HostName {
        /// The name found.
        value: String,
        /// What is wrong with it.
        #[source]
        source: stratus_rpc::wire::ids::InvalidId,
    },
    /// `[network] public_range` is not an IPv4 CIDR.
    #[error(
        "configuration {path}: [network] public_range {value:?} is not an IPv4 CIDR such as 172.24.4.0/24"
    )]
    PublicRange {
        /// The file read.
        path: PathBuf,
        /// The value found.
        value: String,
        /// Why it does not parse.
        #[source]
        source: ipnet::AddrParseError,
    },
    /// `[network] fixed_range` is not an IPv4 CIDR.
    #[error(
        "configuration {path}: [network] fixed_range {value:?} is not an IPv4 CIDR such as 10.0.0.0/16"
    )]
    FixedRange {
        /// The file read.
        path: PathBuf,
        /// The value found.
        value: String,
        /// Why it does not parse.
        #[source]
        source: ipnet::AddrParseError,
    },
}

/// Loads `path` (if `required` is false, a missing file means defaults) with
/// the environment's `STRATUS_<SECTION>__<FIELD>` overrides on top.
pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
    let invalid = |source| ConfigError::Invalid {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if required || path.exists() {
        if !path.exists() {
            return Err(invalid(figment::Error::from(
                "no such file (copy deploy/stratus.example.toml there, or pass --config)"
                    .to_owned(),
            )));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let mut config: Config = figment.merge(env_overrides()).extract().map_err(invalid)?;
    config.api.public =
        public_addressing(&config.network).map_err(|(value, source)| ConfigError::PublicRange {
            path: path.to_owned(),
            value,
            source,
        })?;
    config.compute.cloud_ranges =
        cloud_ranges(&config.network).map_err(|(value, source)| ConfigError::FixedRange {
            path: path.to_owned(),
            value,
            source,
        })?;
    config
        .scheduler
        .validate()
        .map_err(|source| ConfigError::Setting {
            path: path.to_owned(),
            source,
        })?;
    Ok(config)
}

/// The api's view of `[network]`'s public keys: none when `public_range`
/// is empty; the value and why when it does not parse.
pub fn public_addressing(
    network: &stratus_network::config::NetworkConfig,
) -> Result<Option<stratus_api::config::PublicAddressing>, (String, ipnet::AddrParseError)> {
    let value = network.public_range.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let range: ipnet::Ipv4Net = value.parse().map_err(|e| (value.to_owned(), e))?;
    Ok(Some(stratus_api::config::PublicAddressing {
        range: range.trunc(),
        on_launch: network.public_ip_on_launch,
        dns_domain: network.public_dns_domain.clone(),
    }))
}

/// The compute hosts' view of `[network]`: the cloud's own ranges, which
/// no guest may use as a source but for its own address (the fixed range
/// every project's network is cut from, the public range if any, the
/// metadata host); the fixed range's value and why when it does not parse.
/// A bad public range is [`public_addressing`]'s to report.
pub fn cloud_ranges(
    network: &stratus_network::config::NetworkConfig,
) -> Result<Vec<ipnet::Ipv4Net>, (String, ipnet::AddrParseError)> {
    let fixed = network.fixed_range.trim();
    let mut ranges = vec![fixed.parse().map_err(|e| (fixed.to_owned(), e))?];
    ranges.extend(network.public_range.trim().parse::<ipnet::Ipv4Net>().ok());
    ranges.extend(network.metadata_host.map(ipnet::Ipv4Net::from));
    Ok(ranges)
}

/// Parses configuration text alone, without the environment (for tests and
/// `stratus config check`).
pub fn parse(text: &str) -> Result<Config, Box<figment::Error>> {
    Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::string(text))
        .extract()
        .map_err(Box::new)
}

/// `STRATUS_RPC__URL=…` overrides `[rpc] url`. Only names with a `__` are
/// overrides, so other `STRATUS_*` variables (`STRATUS_CONFIG`) pass by.
fn env_overrides() -> Env {
    Env::prefixed("STRATUS_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

#[cfg(test)]
// figment's Jail dictates its closures' error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = parse("[rpc]\nurll = \"amqp://x\"\n").expect_err("typo refused");
        assert!(err.to_string().contains("urll"), "{err}");
        let err = parse("[nope]\n").expect_err("unknown section refused");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("s.toml", "[rpc]\nexchange = \"from-file\"\nprefetch = 8\n")?;
            jail.set_env("STRATUS_RPC__EXCHANGE", "from-env");
            jail.set_env("STRATUS_CONFIG", "ignored: no section");
            let config = load(Path::new("s.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(config.rpc.exchange, "from-env");
            assert_eq!(config.rpc.prefetch, 8);
            Ok(())
        });
    }

    #[test]
    fn a_bad_override_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("STRATUS_RPC__PREFETCH", "many");
            let err = load(Path::new("absent.toml"), false).expect_err("not a number");
            let err = stratus_rpc::error::error_chain(&err);
            assert!(err.to_lowercase().contains("prefetch"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn compute_hosts_get_the_clouds_ranges() {
        let config = parse(
            "[network]\nfixed_range = \"10.1.0.0/16\"\npublic_range = \"172.24.4.0/24\"\n\
             metadata_host = \"192.0.2.10\"\n",
        )
        .expect("parses");
        let ranges: Vec<String> = cloud_ranges(&config.network)
            .expect("valid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ranges, ["10.1.0.0/16", "172.24.4.0/24", "192.0.2.10/32"]);
        let config = parse("[network]\npublic_range = \"\"\n").expect("parses");
        let ranges = cloud_ranges(&config.network).expect("valid");
        assert_eq!(
            ranges,
            ["10.0.0.0/16".parse::<ipnet::Ipv4Net>().expect("cidr")]
        );
        let config = parse("[network]\nfixed_range = \"ten\"\n").expect("parses");
        let (value, _) = cloud_ranges(&config.network).expect_err("not a CIDR");
        assert_eq!(value, "ten");
    }

    #[test]
    fn a_missing_required_file_is_an_error() {
        let err = load(Path::new("/nonexistent/stratus.toml"), true).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/stratus.toml"),
            "{err}"
        );
    }
}
