//! The last word on builds that never finish: an instance pending with no
//! news for `[api] build_timeout_secs` goes to error with a reason, so a
//! compute host that died for good, or a report lost for good, never leaves
//! it pending forever. A host that does report later still wins: its report
//! carries a newer sequence.

use std::time::{Duration, SystemTime};

use stratus_rpc::wire::conductor::{InstanceEvent, InstanceState};
use tracing::{info, warn};

use crate::db::instances::StateChange;
use crate::db::{Db, DbError};

/// Puts stuck builds in error every `timeout / 10` (at least each second).
pub async fn run(db: Db, timeout: Duration) {
    if timeout.is_zero() {
        return;
    }
    let every = (timeout / 10).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sweep(&db, timeout).await {
            warn!(error = %stratus_rpc::error::error_chain(&e), "looking for stuck builds");
        }
    }
}

/// One pass: every instance pending without news for `timeout` goes to
/// error; how many did. The reason a client reads names no host: which one
/// stopped reporting goes to the log.
pub async fn sweep(db: &Db, timeout: Duration) -> Result<usize, DbError> {
    let before = humantime::format_rfc3339_millis(
        SystemTime::now()
            .checked_sub(timeout)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
    .to_string();
    let mut failed = 0;
    for (uuid, host) in db.pending_since(&before).await? {
        let reason = match &host {
            Some(_) => format!(
                "the build did not finish within {} s: its compute host stopped reporting on it",
                timeout.as_secs()
            ),
            None => format!(
                "the build did not start within {} s: no compute host took it",
                timeout.as_secs()
            ),
        };
        // Only a pending build times out; the update applies only if no
        // newer report came meanwhile.
        let state = InstanceState::Pending
            .transition(InstanceEvent::BuildFailed)
            .unwrap_or(InstanceState::Error);
        let change = StateChange {
            reason: Some(&reason),
            ..StateChange::to(state, super::sequence())
        };
        if db.update_state(&uuid, &change).await? {
            info!(instance_id = %uuid, host = host.as_deref().unwrap_or(""), %reason, "build timed out");
            failed += 1;
        }
    }
    Ok(failed)
}
