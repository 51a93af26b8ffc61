//! Bridges and VLAN interfaces: create what is missing, leave what exists.
//! Safe to call concurrently: one lock per bridge inside the process, and
//! "already exists" from a racing process counts as success.

use std::sync::Arc;

use ipnet::Ipv4Net;
use tracing::info;

use crate::locks::KeyedLocks;
use crate::{CommandError, HostCommands, check_ifname};

/// Creates bridges and VLAN interfaces on this host.
#[derive(Debug)]
pub struct Bridges {
    host: Arc<dyn HostCommands>,
    locks: KeyedLocks<String>,
}

impl Bridges {
    /// Bridges made through `host`.
    pub fn new(host: Arc<dyn HostCommands>) -> Self {
        Self {
            host,
            locks: KeyedLocks::new(),
        }
    }

    async fn exists(&self, name: &str) -> bool {
        self.host
            .run("ip", &["link", "show", "dev", name], None)
            .await
            .is_ok()
    }

    /// Creates `link` with `create` unless it exists; brings it up.
    async fn ensure_link(&self, name: &str, create: &[&str]) -> Result<(), CommandError> {
        if !self.exists(name).await {
            match self.host.run("ip", create, None).await {
                Ok(_) => info!(link = name, "created"),
                // Another process made it between our look and our add.
                Err(e) if e.why.contains("File exists") => {}
                Err(e) => return Err(e),
            }
        }
        self.host
            .run("ip", &["link", "set", "dev", name, "up"], None)
            .await?;
        Ok(())
    }

    /// Makes sure the bridge exists and is up.
    pub async fn ensure_bridge(&self, bridge: &str) -> Result<(), CommandError> {
        check_ifname(bridge)?;
        let _held = self.locks.lock(bridge.to_owned()).await;
        self.ensure_link(bridge, &["link", "add", "name", bridge, "type", "bridge"])
            .await
    }

    /// Makes sure `vlan<id>` exists on `interface`, the bridge exists, and the
    /// VLAN interface is a port of the bridge.
    pub async fn ensure_vlan_bridge(
        &self,
        vlan: u16,
        interface: &str,
        bridge: &str,
    ) -> Result<(), CommandError> {
        check_ifname(interface)?;
        check_ifname(bridge)?;
        if !(1..=4094).contains(&vlan) {
            return Err(CommandError::failed(
                "(vlan check)",
                format!("VLAN id {vlan} outside 1-4094"),
            ));
        }
        let _held = self.locks.lock(bridge.to_owned()).await;
        let vlan_if = format!("vlan{vlan}");
        let id = vlan.to_string();
        self.ensure_link(
            &vlan_if,
            &[
                "link", "add", "link", interface, "name", &vlan_if, "type", "vlan", "id", &id,
            ],
        )
        .await?;
        self.ensure_link(bridge, &["link", "add", "name", bridge, "type", "bridge"])
            .await?;
        self.host
            .run(
                "ip",
                &["link", "set", "dev", &vlan_if, "master", bridge],
                None,
            )
            .await?;
        Ok(())
    }

    /// Gives the bridge `address` within `network` (idempotent).
    pub async fn ensure_address(
        &self,
        bridge: &str,
        address: std::net::Ipv4Addr,
        network: Ipv4Net,
    ) -> Result<(), CommandError> {
        check_ifname(bridge)?;
        let cidr = format!("{address}/{}", network.prefix_len());
        self.host
            .run("ip", &["addr", "replace", &cidr, "dev", bridge], None)
            .await?;
        Ok(())
    }
}
