//! What one placement needs: the instance, its zone or forced host, and the
//! hosts it was already tried on.

use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::ids::HostName;

use crate::error::NoValidHost;

/// One instance to place.
#[derive(Debug)]
pub struct RequestSpec<'a> {
    /// The instance, with its flavor, image and placement so far.
    pub instance: &'a RunInstance,
    /// The requested zone, if any.
    pub zone: Option<&'a str>,
    /// A host an administrator forced with `zone:host`.
    pub forced_host: Option<HostName>,
}

impl<'a> RequestSpec<'a> {
    /// Reads the zone (or `zone:host`) of `instance`. Forcing a host is for
    /// administrators; anyone else gets an error, not a silent fallback.
    pub fn new(instance: &'a RunInstance, is_admin: bool) -> Result<Self, NoValidHost> {
        let requested = instance
            .placement
            .availability_zone
            .as_deref()
            .map(str::trim)
            .filter(|z| !z.is_empty());
        let Some((zone, host)) = requested.and_then(|z| z.split_once(':')) else {
            return Ok(Self {
                instance,
                zone: requested,
                forced_host: None,
            });
        };
        if !is_admin {
            return Err(NoValidHost::Forbidden);
        }
        let forced_host = host
            .parse()
            .map_err(|_| NoValidHost::BadForcedHost(host.to_owned()))?;
        Ok(Self {
            instance,
            zone: Some(zone).filter(|z| !z.is_empty()),
            forced_host: Some(forced_host),
        })
    }

    /// The hosts this instance was already tried on.
    pub fn hosts_tried(&self) -> &[HostName] {
        &self.instance.placement.hosts_tried
    }
}
