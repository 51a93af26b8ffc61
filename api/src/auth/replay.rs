//! A signed request is acted on once: after its signature verifies, a
//! [`ReplayGuard`] refuses it if the same signature was accepted before, for
//! as long as the verifier itself would still accept that signature.
//!
//! Why identical requests within a few seconds still pass: SigV4's
//! `X-Amz-Date` and SigV2's `Timestamp` count whole seconds and neither
//! carries a nonce, so a client that sends the same call twice within one
//! second produces byte-identical signatures. Real clients do, mutating
//! calls included: with no grace, `api/tests/ec2/life.py` failed twice, on
//! boto3 repeating the rule the AWS CLI had just authorized (expecting
//! `InvalidPermission.Duplicate`) and on RunInstances repeated with its
//! ClientToken (expecting the same reservation); `stratus bench api` sends
//! one RunInstances form many at a time. Such twins cannot be told from a
//! replay, and refusing them would break those clients, so a repeat
//! arriving within [`TWIN_GRACE`] of the first sighting is let through and
//! every later one is refused. What stays open is a replay within those few
//! seconds; refusing only mutating actions would not have helped.
//!
//! Retries are not twins in practice: botocore and the other SDKs sign each
//! attempt afresh, so a retry in a later second carries a new signature.
//! A presigned URL is a signed request like any other: it is good for one
//! use (and its twins), not for every use until its `X-Amz-Expires`.
//!
//! Several api processes may serve one cloud on one PostgreSQL database,
//! any of them answering any request, so memory alone would let a replay
//! through by sending it to another replica. [`ReplayGuard::admit_shared`]
//! asks memory first (a signature this process saw needs nothing more)
//! and records a signature new to it in the database with one statement,
//! which answers when any replica first saw it: the twin grace then runs
//! from that first sighting wherever it happened, so twins split across
//! replicas pass and a later replay is refused on every replica alike.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tracing::warn;

use super::{AuthError, SignedRequest, provided_signature};
use crate::db::{Db, DbError};

/// How long after a signature's first sighting an identical request is
/// taken for a same-second twin rather than a replay (see the module docs):
/// twins are signed within one second of each other; the rest is slack for
/// a loaded server.
pub const TWIN_GRACE: Duration = Duration::from_secs(5);

/// Most signatures remembered at once. Each costs about 100 bytes, so the
/// guard stays near 10 MB however many requests arrive; past this the
/// oldest are forgotten, and a replay of one of them is caught only by the
/// database's record ([`ReplayGuard::admit_shared`]).
pub const CAPACITY: usize = 100_000;

/// Every this many signatures recorded in the database, expired records
/// are swept, at most [`SWEEP_LIMIT`] at a time: more than come in
/// meanwhile, so the table stays near what the lifetime holds.
const SWEEP_EVERY: u64 = 64;

/// Most expired records one sweep deletes, so no request pays for a
/// backlog.
const SWEEP_LIMIT: i64 = 1_000;

/// What one accepted signature is remembered by: a digest of the access key
/// and the signature bytes, fixed in size whatever the request sent.
type Key = [u8; 32];

/// The signatures accepted recently (see the module docs).
#[derive(Debug)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
    lifetime: Duration,
    grace: Duration,
    capacity: usize,
    /// Signatures recorded in the database, counting towards a sweep.
    recorded: AtomicU64,
}

/// Remembered signatures, oldest first, and when each was first seen.
#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<(Instant, Key)>,
    first: HashMap<Key, Instant>,
}

impl Seen {
    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.first.remove(&key);
        }
    }

    /// Forgets what could no longer verify at `now`.
    fn expire(&mut self, now: Instant, lifetime: Duration) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > lifetime)
        {
            self.forget_oldest();
        }
    }

    /// Remembers `key` as first seen `at`, unless it is already remembered.
    fn remember(&mut self, key: Key, at: Instant, capacity: usize) {
        if self.first.contains_key(&key) {
            return;
        }
        while self.order.len() >= capacity {
            self.forget_oldest();
        }
        self.order.push_back((at, key));
        self.first.insert(key, at);
    }
}

impl ReplayGuard {
    /// A guard for signatures checked with `window` (`[api]
    /// signature_window_secs`), with [`TWIN_GRACE`] and [`CAPACITY`].
    pub fn new(window: Duration) -> Self {
        Self::with_limits(window, TWIN_GRACE, CAPACITY)
    }

    /// A guard with its own twin grace and capacity (tests use a grace of zero).
    pub fn with_limits(window: Duration, grace: Duration, capacity: usize) -> Self {
        Self {
            seen: Mutex::new(Seen::default()),
            // A signature seen at `s` carries a time no earlier than
            // `s - window` and stops verifying at that time plus `window`;
            // the extra second covers the two clocks rounding apart.
            lifetime: window
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(1)),
            grace,
            capacity: capacity.max(1),
            recorded: AtomicU64::new(0),
        }
    }

    /// Records the signature of `request` (signed by `access_key`, already
    /// verified) as seen at `now`; refuses it if it was seen before, more
    /// than the twin grace ago. This process's memory only.
    pub fn admit(
        &self,
        request: &SignedRequest,
        access_key: &str,
        now: Instant,
    ) -> Result<(), AuthError> {
        let key = key(request, access_key)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.expire(now, self.lifetime);
        if let Some(first) = seen.first.get(&key) {
            return self.verdict(now.saturating_duration_since(*first));
        }
        seen.remember(key, now, self.capacity);
        Ok(())
    }

    /// As [`ReplayGuard::admit`], now, and across every api process on
    /// `db`: a signature new to this memory is recorded there, and judged
    /// by when any of them first saw it (see the module docs). The outer
    /// error is the database failing, which admits nothing.
    pub async fn admit_shared(
        &self,
        request: &SignedRequest<'_>,
        access_key: &str,
        db: &Db,
    ) -> Result<Result<(), AuthError>, DbError> {
        let key = match key(request, access_key) {
            Ok(key) => key,
            Err(e) => return Ok(Err(e)),
        };
        let now = Instant::now();
        if let Some(first) = self.recall(&key, now) {
            return Ok(self.verdict(now.saturating_duration_since(first)));
        }
        let wall = unix_ms(SystemTime::now());
        let lifetime = i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX);
        let first = db
            .sight_signature(&hex::encode(key), wall, wall.saturating_add(lifetime))
            .await?;
        // Another replica's clock may run ahead of this one: a sighting
        // "in the future" is a twin, not a reason to refuse.
        let since = Duration::from_millis(u64::try_from(wall.saturating_sub(first)).unwrap_or(0));
        // Remembered from the first sighting, wherever it was, so the
        // grace does not start again here.
        let at = now.checked_sub(since).unwrap_or(now);
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remember(key, at, self.capacity);
        if self
            .recorded
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            // A failed sweep only leaves rows for the next one.
            if let Err(e) = db.sweep_signatures(wall, SWEEP_LIMIT).await {
                warn!(error = %e, "sweeping expired signatures failed");
            }
        }
        Ok(self.verdict(since))
    }

    /// When this process first saw `key`, if it remembers it.
    fn recall(&self, key: &Key, now: Instant) -> Option<Instant> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.expire(now, self.lifetime);
        seen.first.get(key).copied()
    }

    /// A signature first seen `since` ago: a twin within the grace, else a replay.
    fn verdict(&self, since: Duration) -> Result<(), AuthError> {
        if since <= self.grace {
            Ok(())
        } else {
            Err(AuthError::Replayed(format!("{}s ago", since.as_secs())))
        }
    }

    /// How many signatures are remembered now.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len()
    }

    /// Whether no signature is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a signature is remembered by: a digest of `access_key` and the
/// signature bytes.
fn key(request: &SignedRequest, access_key: &str) -> Result<Key, AuthError> {
    let signature = provided_signature(request)?;
    let mut hasher = Sha256::new();
    hasher.update(access_key.as_bytes());
    // The separator keeps ("ab", sig) and ("a", "b" + sig) apart.
    hasher.update([0]);
    hasher.update(&signature);
    Ok(hasher.finalize().into())
}

/// `at` as Unix milliseconds, as the database records sightings.
fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    fn headers(signature: &str) -> Vec<(String, String)> {
        vec![
            ("host".into(), "h".into()),
            ("x-amz-date".into(), "20261122T123456Z".into()),
            (
                "authorization".into(),
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKID/20261122/nova/ec2/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature={signature}"
                ),
            ),
        ]
    }

    fn admit(guard: &ReplayGuard, signature: &str, at: Instant) -> Result<(), AuthError> {
        let headers = headers(signature);
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"Action=DescribeInstances",
        };
        guard.admit(&request, "AKID", at)
    }

    fn sig(n: u8) -> String {
        hex::encode([n; 32])
    }

    #[test]
    fn a_signature_is_accepted_once_then_refused_until_it_could_no_longer_verify() {
        let guard = ReplayGuard::with_limits(WINDOW, Duration::ZERO, 16);
        let t0 = Instant::now();
        assert_eq!(admit(&guard, &sig(1), t0), Ok(()));
        let again = admit(&guard, &sig(1), t0 + Duration::from_secs(3));
        assert!(
            matches!(&again, Err(AuthError::Replayed(m)) if m == "3s ago"),
            "{again:?}"
        );
        assert_eq!(again.map_err(|e| e.code()), Err("AuthFailure"));
        // Upper-case hex is the same signature, not a way around the guard.
        assert!(admit(&guard, &sig(1).to_uppercase(), t0 + Duration::from_secs(4)).is_err());
        assert_eq!(admit(&guard, &sig(2), t0 + Duration::from_secs(4)), Ok(()));
        // Twice the window later the verifier refuses it anyway; the guard forgets it.
        let later = t0 + WINDOW * 2 + Duration::from_secs(10);
        assert_eq!(admit(&guard, &sig(1), later), Ok(()));
        assert_eq!(guard.len(), 1, "expired entries are dropped");
    }

    #[test]
    fn twins_within_the_grace_pass_and_later_repeats_do_not() {
        let guard = ReplayGuard::with_limits(WINDOW, TWIN_GRACE, 16);
        let t0 = Instant::now();
        assert_eq!(admit(&guard, &sig(1), t0), Ok(()));
        assert_eq!(
            admit(&guard, &sig(1), t0 + Duration::from_millis(900)),
            Ok(())
        );
        assert_eq!(admit(&guard, &sig(1), t0 + TWIN_GRACE), Ok(()));
        // The grace runs from the first sighting: twins do not extend it.
        assert!(admit(&guard, &sig(1), t0 + TWIN_GRACE + Duration::from_millis(1)).is_err());
    }

    #[test]
    fn memory_stays_bounded_by_the_capacity() {
        let guard = ReplayGuard::with_limits(WINDOW, Duration::ZERO, 100);
        let t0 = Instant::now();
        for n in 0..=255u8 {
            assert_eq!(admit(&guard, &sig(n), t0), Ok(()));
        }
        assert_eq!(guard.len(), 100);
        // The newest are still refused; the oldest were forgotten.
        assert!(admit(&guard, &sig(255), t0 + Duration::from_secs(1)).is_err());
        assert_eq!(admit(&guard, &sig(0), t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn the_same_signature_from_another_key_is_another_entry() {
        let guard = ReplayGuard::with_limits(WINDOW, Duration::ZERO, 16);
        let headers = headers(&sig(7));
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let t0 = Instant::now();
        assert_eq!(guard.admit(&request, "AKID", t0), Ok(()));
        assert_eq!(guard.admit(&request, "OTHER", t0), Ok(()));
        assert_eq!(guard.len(), 2);
    }
}
