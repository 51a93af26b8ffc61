//! Which host builds an instance: each placement is granted to one host
//! before it builds anything, so a request delivered twice (a broker's
//! redelivery, a launch re-cast after a restart) is built once; and what
//! the database says of instances hosts and the network controller hold
//! something of, for their reconciles.

use stratus_rpc::wire::conductor::{
    BuildClaim, ClaimAnswer, InstanceState, InstanceStatesQuery, KnownInstance,
};
use tracing::{info, warn};

use crate::db::instances::StoredState;
use crate::db::{Db, DbError};

/// Times the grant is tried again when the instance changed between the
/// conditional update and the read that explains its refusal.
const TRIES: usize = 3;

/// Grants or refuses `claim`: granted when the instance is pending and no
/// other host holds it (or it was handed back), or when the claimer holds
/// it already; refused otherwise, with whether its address may go.
pub async fn claim_build(db: &Db, claim: &BuildClaim) -> Result<ClaimAnswer, DbError> {
    let uuid = claim.instance_id.to_string();
    let host = claim.host.as_str();
    let sequence = i64::try_from(claim.sequence).unwrap_or(i64::MAX);
    for _ in 0..TRIES {
        if db
            .claim_build(&uuid, host, i64::from(claim.attempt), sequence)
            .await?
        {
            info!(instance_id = %uuid, host, attempt = claim.attempt, "build granted");
            return Ok(ClaimAnswer::Granted);
        }
        let stored = db.instance_state(&uuid).await?;
        if let Some(answer) = refusal(stored.as_ref(), host, claim.attempt) {
            if let ClaimAnswer::Refused {
                reason,
                release_address,
            } = &answer
            {
                warn!(instance_id = %uuid, host, attempt = claim.attempt, %reason, release_address, "build refused");
            } else {
                info!(instance_id = %uuid, host, "build granted to the host holding it");
            }
            return Ok(answer);
        }
        // Pending and free to take again (handed back in between): retry.
    }
    let reason = "the instance changed while its build was claimed".to_owned();
    warn!(instance_id = %uuid, host, %reason, "build refused");
    Ok(ClaimAnswer::Refused {
        reason,
        release_address: false,
    })
}

/// The answer for an instance the conditional grant did not take, as now
/// stored; none when it could be granted now (try again).
fn refusal(stored: Option<&StoredState>, claimer: &str, attempt: u32) -> Option<ClaimAnswer> {
    let refused = |reason: String, release_address| {
        Some(ClaimAnswer::Refused {
            reason,
            release_address,
        })
    };
    let Some(stored) = stored else {
        return refused("the database has no such instance".into(), true);
    };
    if stored.state.is_gone() {
        return refused(format!("the instance is {}", stored.state), true);
    }
    let holder = stored.host.as_deref();
    match stored.state {
        InstanceState::Pending
            if holder.is_none()
                || holder == Some(claimer)
                || stored.task_state.as_deref() == Some("scheduling")
                // A later placement: its host may claim before the host
                // that handed it back has said so.
                || i64::from(attempt) > stored.attempt =>
        {
            None
        }
        // The user wants it gone: its terminate reaches its host.
        InstanceState::ShuttingDown => refused("the instance is shutting down".into(), false),
        // A resumed build of what this host holds finds it and reports it.
        _ if holder == Some(claimer) => Some(ClaimAnswer::Granted),
        _ => {
            let state = stored.state;
            let reason = match holder {
                Some(holder) => format!("host {holder} holds the instance ({state})"),
                None => format!("the instance is {state} and no host holds it"),
            };
            refused(reason, false)
        }
    }
}

/// What the database says of each instance asked about; those it does not
/// have are answered with no state.
pub async fn instance_states(
    db: &Db,
    query: &InstanceStatesQuery,
) -> Result<Vec<KnownInstance>, DbError> {
    let uuids: Vec<String> = query.ids.iter().map(ToString::to_string).collect();
    let stored: std::collections::HashMap<String, StoredState> =
        db.stored_states(&uuids).await?.into_iter().collect();
    Ok(query
        .ids
        .iter()
        .zip(&uuids)
        .map(|(id, uuid)| match stored.get(uuid) {
            Some(s) => KnownInstance {
                instance_id: *id,
                state: Some(s.state),
                host: s.host.as_deref().and_then(|h| h.parse().ok()),
                attempt: u32::try_from(s.attempt).unwrap_or(0),
            },
            None => KnownInstance {
                instance_id: *id,
                state: None,
                host: None,
                attempt: 0,
            },
        })
        .collect())
}
