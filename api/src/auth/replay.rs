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

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{AuthError, SignedRequest, provided_signature};

/// How long after a signature's first sighting an identical request is
/// taken for a same-second twin rather than a replay (see the module docs):
/// twins are signed within one second of each other; the rest is slack for
/// a loaded server.
pub const TWIN_GRACE: Duration = Duration::from_secs(5);

/// Most signatures remembered at once. Each costs about 100 bytes, so the
/// guard stays near 10 MB however many requests arrive; past this the
/// oldest are forgotten, and a replay of one of them is no longer caught.
pub const CAPACITY: usize = 100_000;

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
        }
    }

    /// Records the signature of `request` (signed by `access_key`, already
    /// verified) as seen at `now`; refuses it if it was seen before, more
    /// than the twin grace ago.
    pub fn admit(
        &self,
        request: &SignedRequest,
        access_key: &str,
        now: Instant,
    ) -> Result<(), AuthError> {
        let signature = provided_signature(request)?;
        let mut hasher = Sha256::new();
        hasher.update(access_key.as_bytes());
        // The separator keeps ("ab", sig) and ("a", "b" + sig) apart.
        hasher.update([0]);
        hasher.update(&signature);
        let key: Key = hasher.finalize().into();

        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        while seen
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.lifetime)
        {
            seen.forget_oldest();
        }
        if let Some(first) = seen.first.get(&key) {
            let since = now.saturating_duration_since(*first);
            if since <= self.grace {
                return Ok(());
            }
            return Err(AuthError::Replayed(format!("{}s ago", since.as_secs())));
        }
        while seen.order.len() >= self.capacity {
            seen.forget_oldest();
        }
        seen.order.push_back((now, key));
        seen.first.insert(key, now);
        Ok(())
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
