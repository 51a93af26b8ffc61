//! A stopped instance started with another instance type than it was built
//! with (ModifyInstanceAttribute changes the type while it is stopped): the
//! new size is claimed against this host, given to the domain and recorded,
//! all before the guest powers on.

use stratus_rpc::wire::compute::Flavor;
use stratus_rpc::wire::ids::InstanceId;
use tracing::{info, warn};

use super::ComputeManager;
use crate::driver::DriverError;
use crate::instance_dir::{InstanceDir, InstanceRecord, domain_name};

/// Why a start did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// This host has no room for the instance's new type: it stays stopped,
    /// with the size it had.
    #[error("instance {instance}: no room on this host for instance type {flavor}: {reason}")]
    InsufficientCapacity {
        /// The instance.
        instance: InstanceId,
        /// The type asked for.
        flavor: String,
        /// What does not fit.
        reason: String,
    },
    /// The instance's record could not be written.
    #[error("instance {instance}: writing its record")]
    Record {
        /// The instance.
        instance: InstanceId,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The instance's config drive could not be built with its new user
    /// data (the guest stays stopped, its drive as it was).
    #[error("instance {instance}: its config drive with the new user data")]
    UserData {
        /// The instance.
        instance: InstanceId,
        /// The cause.
        #[source]
        source: super::PrepareError,
    },
    /// The hypervisor failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Whether `a` and `b` give a guest the same size (the root disk aside).
fn same_size(a: &Flavor, b: &Flavor) -> bool {
    (&a.name, a.vcpus, a.memory_mb) == (&b.name, b.vcpus, b.memory_mb)
}

impl ComputeManager {
    /// Gives stopped instance `id` the vCPUs and memory of `wanted` when its
    /// record says it has another type; whether it did. Runs under the
    /// instance's lock, with the guest stopped.
    pub(super) async fn resize_for_start(
        &self,
        id: InstanceId,
        wanted: &Flavor,
    ) -> Result<bool, StartError> {
        let dir = self.dir(&id);
        // Not built here: the power-on says what is missing.
        let Some(record) = InstanceDir::read_record(dir.root()).await else {
            return Ok(false);
        };
        if !record.built() || same_size(&record.flavor, wanted) {
            return Ok(false);
        }
        let name = domain_name(&id);
        // AWS keeps the root volume on a type change: the disk stays as it
        // was built, and so does the disk it counts against this host.
        let resized = Flavor {
            root_gb: record.flavor.root_gb,
            ..wanted.clone()
        };
        // The limits the scheduler placed it with: what this host may hand out.
        let request = InstanceDir::read_request(dir.root()).await;
        let limits = request.as_ref().and_then(|r| r.placement.limits);
        self.claim_flavor(id, &resized, limits).map_err(|reason| {
            StartError::InsufficientCapacity {
                instance: id,
                flavor: wanted.name.clone(),
                reason,
            }
        })?;
        let resizing = self
            .parts
            .driver
            .resize(&name, resized.vcpus, resized.memory_mb)
            .await;
        if let Err(e) = resizing {
            self.uncount(id, &record.flavor);
            return Err(e.into());
        }
        // The domain first, then the record: a crash between the two leaves
        // the old type recorded, so the next start resizes again (the same
        // size twice is harmless); the other order would leave a new type
        // recorded on an old-sized domain, never resized.
        let updated = InstanceRecord {
            flavor: resized.clone(),
            ..record.clone()
        };
        if let Err(source) = dir.write_record(&updated).await {
            self.uncount(id, &record.flavor);
            return Err(StartError::Record {
                instance: id,
                source,
            });
        }
        // The saved request too, so nothing on this host names the old type.
        if let Some(mut request) = request {
            request.flavor = resized.clone();
            if let Err(e) = dir.write_request(&request).await {
                warn!(instance_id = %id, error = %e, "could not record the new type in the saved request");
            }
        }
        info!(instance_id = %id, instance_type = %resized.name, vcpus = resized.vcpus, memory_mb = resized.memory_mb, "resized for its start");
        Ok(true)
    }

    /// Counts `flavor` for `id` again, as before a resize that failed.
    fn uncount(&self, id: InstanceId, flavor: &Flavor) {
        self.flavors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, flavor.clone());
    }
}
