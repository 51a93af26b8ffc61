//! User data changed while an instance was stopped: its config drive is
//! built again before the guest starts, so the guest reads the user data the
//! api (and its metadata service) has now, as EC2 serves the new user data
//! after a start, not what the instance was launched with.

use stratus_rpc::RequestContext;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::wire::network::AllocateFixedIp;
use tracing::{info, warn};

use super::ComputeManager;
use super::resize::StartError;
use crate::instance_dir::InstanceDir;

impl ComputeManager {
    /// Gives instance `id` the user data `user_data` (base64) if its saved
    /// request has other: its config drive, if it has one, is built again.
    /// Runs under the instance's lock, with the guest stopped.
    pub(super) async fn refresh_user_data(
        &self,
        ctx: &RequestContext,
        id: InstanceId,
        user_data: Option<&str>,
    ) -> Result<(), StartError> {
        let dir = self.dir(&id);
        let Some(mut request) = InstanceDir::read_request(dir.root()).await else {
            warn!(instance_id = %id, "no saved request (an older folder): its config drive keeps the user data it was built with");
            return Ok(());
        };
        if request.user_data.as_deref() == user_data {
            return Ok(());
        }
        request.user_data = user_data.map(str::to_owned);
        let failed = |source| StartError::UserData {
            instance: id,
            source,
        };
        if tokio::fs::try_exists(dir.config_drive())
            .await
            .unwrap_or(false)
        {
            // The drive's metadata names the fixed IP: the instance holds
            // one, so asking again answers the one it has.
            let fixed = self
                .allocate(
                    ctx,
                    AllocateFixedIp {
                        instance_id: id,
                        project_id: request.project_id.clone(),
                        mac: id.mac(),
                        deadline_ms: None,
                        requested_address: request.private_ip_address,
                    },
                )
                .await
                .map_err(|e| failed(Box::new(e)))?;
            self.parts
                .prepare
                .refresh_config_drive(&request, &dir, &fixed)
                .await
                .map_err(failed)?;
            info!(instance_id = %id, "config drive rebuilt with the new user data");
        }
        // The drive first, then the request: a crash between the two leaves
        // the old user data saved, so the next start builds the drive again.
        dir.write_request(&request)
            .await
            .map_err(|e| failed(Box::new(e)))
    }
}
