use std::time::{Duration, Instant};

/// How long to sleep between polls.
const POLL: Duration = Duration::from_millis(10);

/// Polls `cond` until it holds or `within` passes; whether it held (asked
/// once more at the deadline, so a slow last poll still counts).
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    cond()
}

/// Polls `cond` until it holds; panics naming `what` after `within`.
pub async fn wait_until(within: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        eventually(within, cond).await,
        "timed out after {within:?} waiting for {what}"
    );
}

/// [`eventually`] for code off the async runtime: blocks the thread.
pub fn eventually_blocking(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    cond()
}
