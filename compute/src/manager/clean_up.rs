//! Taking an instance off this host: its domain, firewall chains, address
//! and files. A domain that cannot be destroyed (the hypervisor is away)
//! keeps everything else in place: deleting the disk and freeing the
//! address of a guest that still runs would hand both to someone else.

use stratus_rpc::RequestContext;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::ReleaseFixedIp;
use tracing::warn;

use super::ComputeManager;
use crate::driver::DriverError;
use crate::instance_dir::domain_name;

/// How far a clean-up got.
#[derive(Debug)]
pub enum CleanUp {
    /// Nothing of the instance is left here.
    Done,
    /// Gone from this host, but its address release waits in the outbox.
    AddressHeld,
    /// The domain could not be destroyed; nothing was removed.
    DomainRemains(DriverError),
}

impl ComputeManager {
    /// Removes everything of the instance from this host and releases its
    /// address.
    pub(super) async fn clean_up(&self, ctx: &RequestContext, id: InstanceId) -> CleanUp {
        self.clean_up_with(ctx, id, true).await
    }

    /// Removes everything of the instance from this host, its address too
    /// when `release`.
    pub(super) async fn clean_up_with(
        &self,
        ctx: &RequestContext,
        id: InstanceId,
        release: bool,
    ) -> CleanUp {
        let name = domain_name(&id);
        if let Err(e) = self.parts.driver.destroy(&name).await {
            warn!(error = %error_chain(&e), "destroying the domain failed; leaving its files and address");
            return CleanUp::DomainRemains(e);
        }
        if let Err(e) = self.parts.firewall.remove_instance(id).await {
            warn!(error = %error_chain(&e), "removing the firewall chains failed");
        }
        let mut outcome = CleanUp::Done;
        if release
            && let Err(e) = self
                .parts
                .network
                .release_fixed_ip(ctx, ReleaseFixedIp { instance_id: id })
                .await
        {
            warn!(error = %error_chain(&e), "releasing the fixed IP failed; will try again");
            self.outbox.release_failed(id);
            outcome = CleanUp::AddressHeld;
        }
        let dir = self.dir(&id);
        if let Err(e) = tokio::fs::remove_dir_all(dir.root()).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(error = %error_chain(&e), "removing the instance folder failed");
        }
        self.flavors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        outcome
    }
}
