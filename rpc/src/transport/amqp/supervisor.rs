//! Keeps one session alive: on failure, fails the callers waiting on it,
//! reconnects with exponential backoff, and re-declares every server.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tracing::{info, warn};

use super::session::{self, Session};
use super::{Inner, redact};

pub(crate) async fn run(inner: Arc<Inner>, mut session: Arc<Session>) {
    loop {
        tokio::select! {
            _ = session.dead.cancelled() => {}
            _ = inner.shutdown.cancelled() => {
                inner.session.send_replace(None);
                session.close("closing").await;
                return;
            }
        }
        inner.session.send_replace(None);
        fail_pending(&inner, session.id);
        session.close("reconnecting").await;

        let min = Duration::from_millis(inner.config.reconnect_min_ms.max(1));
        let max = Duration::from_millis(inner.config.reconnect_max_ms).max(min);
        let mut delay = min;
        session = loop {
            if inner.shutdown.is_cancelled() {
                return;
            }
            let attempt =
                tokio::time::timeout(session::OPEN_TIMEOUT, session::open(&inner, true)).await;
            match attempt.unwrap_or_else(|_| Err(session::open_timed_out())) {
                Ok(next) => break next,
                Err(e) => {
                    warn!(url = %redact(&inner.config.url), error = %e, retry_in = ?delay, "reconnecting to the broker failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = inner.shutdown.cancelled() => return,
                    }
                    delay = (delay * 2).min(max);
                }
            }
        };
        info!(session = session.id, "reconnected to the broker");
        crate::metrics::metrics().rpc_reconnects.inc();
    }
}

/// Callers whose reply queue was on the lost connection will never get their
/// reply: end their wait now rather than at their timeout.
fn fail_pending(inner: &Inner, session: u64) {
    inner
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|_, pending| pending.session != session);
}
