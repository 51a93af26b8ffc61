//! DHCP as Nova ran it: one dnsmasq per network, serving only the static
//! `mac,hostname,ip` entries of a hosts file, reloaded with SIGHUP when the
//! entries change and started again when it has died.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::Ipv4Net;
use stratus_rpc::error::error_chain;
use tracing::{info, warn};

use crate::ipam::store::NetworkRow;
use stratus_host::bridge::Bridges;
use stratus_host::locks::KeyedLocks;
use stratus_host::{CommandError, HostCommands};

/// DHCP could not be brought in line.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// Writing its files failed.
    #[error("DHCP files in {path}")]
    Files {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored network's CIDR does not parse.
    #[error("network {cidr}: not a CIDR")]
    Cidr {
        /// Its CIDR as stored.
        cidr: String,
        /// The parse error.
        #[source]
        source: ipnet::AddrParseError,
    },
    /// A stored network's gateway or DHCP server address does not parse.
    #[error("network {cidr}: {what} {value:?} is not an address")]
    Address {
        /// The network's CIDR.
        cidr: String,
        /// Which address.
        what: String,
        /// The address as stored.
        value: String,
        /// The parse error.
        #[source]
        source: std::net::AddrParseError,
    },
    /// A command (ip, dnsmasq, kill) failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// One dnsmasq per network, on the controller's host.
#[derive(Debug)]
pub struct Dhcp {
    host: Arc<dyn HostCommands>,
    bridges: Bridges,
    dir: PathBuf,
    lease_secs: u32,
    dns: Vec<String>,
    vlan_interface: String,
    /// Serializes updates per network.
    locks: KeyedLocks<i64>,
    /// The entries this process has made each network's dnsmasq load (by
    /// starting it or by SIGHUP). Not the file: a controller killed between
    /// writing the file and signalling leaves a file dnsmasq never read, so
    /// a fresh process signals once whatever the file holds.
    loaded: Mutex<HashMap<i64, String>>,
}

impl Dhcp {
    /// DHCP whose files live under `dir` (one folder per bridge).
    pub fn new(
        host: Arc<dyn HostCommands>,
        dir: PathBuf,
        lease_secs: u32,
        dns: Vec<String>,
        vlan_interface: String,
    ) -> Self {
        Self {
            bridges: Bridges::new(host.clone()),
            host,
            dir,
            lease_secs,
            dns,
            vlan_interface,
            locks: KeyedLocks::new(),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The folder of a network's files.
    pub fn network_dir(&self, network: &NetworkRow) -> PathBuf {
        self.dir
            .join(&network.bridge)
            .join(network.slot.to_string())
    }

    /// Writes the network's host entries and makes dnsmasq serve them:
    /// started if not running, sent SIGHUP if the entries changed.
    pub async fn update(
        &self,
        network: &NetworkRow,
        hosts: &[(String, String, Ipv4Addr)],
    ) -> Result<(), DhcpError> {
        let _held = self.locks.lock(network.slot).await;
        let cidr: Ipv4Net = network.cidr.parse().map_err(|source| DhcpError::Cidr {
            cidr: network.cidr.clone(),
            source,
        })?;
        let parse = |what: &str, value: &str| -> Result<Ipv4Addr, DhcpError> {
            value.parse().map_err(|source| DhcpError::Address {
                cidr: network.cidr.clone(),
                what: what.to_owned(),
                value: value.to_owned(),
                source,
            })
        };
        let gateway = parse("gateway", &network.gateway)?;
        let server = parse("DHCP server", &network.dhcp_server)?;

        match network.vlan {
            Some(vlan) => {
                let vlan = u16::try_from(vlan).unwrap_or(0);
                self.bridges
                    .ensure_vlan_bridge(vlan, &self.vlan_interface, &network.bridge)
                    .await?;
            }
            None => self.bridges.ensure_bridge(&network.bridge).await?,
        }
        // The DHCP host is also the guests' router (as Nova's network host
        // was): without the gateway address here their default route leads
        // nowhere, metadata included.
        for address in [gateway, server] {
            self.bridges
                .ensure_address(&network.bridge, address, cidr)
                .await?;
        }

        let dir = self.network_dir(network);
        let files = |source| DhcpError::Files {
            path: dir.clone(),
            source,
        };
        tokio::fs::create_dir_all(&dir).await.map_err(files)?;
        let hosts_file = dir.join("hosts");
        let text: String = hosts
            .iter()
            .map(|(mac, name, ip)| format!("{mac},{name},{ip}\n"))
            .collect();
        if tokio::fs::read_to_string(&hosts_file).await.ok().as_deref() != Some(text.as_str()) {
            let tmp = dir.join("hosts.tmp");
            tokio::fs::write(&tmp, &text).await.map_err(files)?;
            tokio::fs::rename(&tmp, &hosts_file).await.map_err(files)?;
        }

        let loaded = self.loaded_entries(network.slot).as_deref() == Some(text.as_str());
        match running_pid(&dir).await {
            Some(_) if loaded => {}
            Some(pid) => {
                self.host
                    .run("kill", &["-HUP", &pid.to_string()], None)
                    .await?;
                info!(bridge = %network.bridge, hosts = hosts.len(), "dnsmasq reloaded");
            }
            None => {
                self.start(network, &dir, cidr, gateway, server).await?;
                info!(bridge = %network.bridge, hosts = hosts.len(), "dnsmasq started");
            }
        }
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(network.slot, text);
        Ok(())
    }

    fn loaded_entries(&self, slot: i64) -> Option<String> {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&slot)
            .cloned()
    }

    async fn start(
        &self,
        network: &NetworkRow,
        dir: &Path,
        cidr: Ipv4Net,
        gateway: Ipv4Addr,
        server: Ipv4Addr,
    ) -> Result<(), DhcpError> {
        let path = |name: &str| dir.join(name).display().to_string();
        let dns = if self.dns.is_empty() {
            server.to_string()
        } else {
            self.dns.join(",")
        };
        let args = [
            "--strict-order".to_owned(),
            "--bind-interfaces".to_owned(),
            "--conf-file=".to_owned(),
            "--port=0".to_owned(),
            "--no-hosts".to_owned(),
            "--no-resolv".to_owned(),
            format!("--pid-file={}", path("dnsmasq.pid")),
            format!("--listen-address={server}"),
            "--except-interface=lo".to_owned(),
            format!(
                "--dhcp-range=set:{},{},static,{},{}s",
                network.bridge,
                cidr.network(),
                cidr.netmask(),
                self.lease_secs
            ),
            format!("--dhcp-lease-max={}", cidr.hosts().count()),
            format!("--dhcp-hostsfile={}", path("hosts")),
            format!("--dhcp-leasefile={}", path("leases")),
            format!("--dhcp-option=option:router,{gateway}"),
            format!("--dhcp-option=option:dns-server,{dns}"),
            "--dhcp-no-override".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match self.host.run("dnsmasq", &args, None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(bridge = %network.bridge, error = %error_chain(&e), "dnsmasq did not start");
                Err(e.into())
            }
        }
    }

    /// Stops every dnsmasq under this DHCP's folder.
    pub async fn stop_all(&self) {
        let Ok(mut bridges) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        while let Ok(Some(bridge)) = bridges.next_entry().await {
            let Ok(mut slots) = tokio::fs::read_dir(bridge.path()).await else {
                continue;
            };
            while let Ok(Some(slot)) = slots.next_entry().await {
                if let Some(pid) = running_pid(&slot.path()).await {
                    let _ = self
                        .host
                        .run("kill", &["-TERM", &pid.to_string()], None)
                        .await;
                }
            }
        }
    }
}

/// The pid in the folder's pid file, if that process is alive and is the
/// dnsmasq of this folder (a recycled pid is not ours).
pub async fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = tokio::fs::read_to_string(dir.join("dnsmasq.pid"))
        .await
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    let ours = cmdline.contains("dnsmasq") && cmdline.contains(&*dir.display().to_string());
    ours.then_some(pid)
}
