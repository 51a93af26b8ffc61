//! IMDSv2 session tokens: issued by `PUT /latest/api/token` for a TTL, bound
//! to the address that asked, checked on every request that carries one.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest TTL EC2 allows.
pub const MAX_TTL_SECS: u64 = 21_600;

/// Tokens issued and not yet expired.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, (Ipv4Addr, Instant)>>,
}

impl Tokens {
    /// A new token for `address`, valid `ttl`.
    pub fn issue(&self, address: Ipv4Addr, ttl: Duration) -> String {
        // 244 bits from the OS's random source: not guessable by a neighbour.
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        issued.retain(|_, (_, expires)| *expires > now);
        issued.insert(token.clone(), (address, now + ttl));
        token
    }

    /// Whether `token` was issued to `address` and has not expired.
    pub fn valid(&self, token: &str, address: Ipv4Addr) -> bool {
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(issued.get(token), Some((owner, expires)) if *owner == address && *expires > Instant::now())
    }
}
