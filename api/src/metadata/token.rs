//! IMDSv2 session tokens: issued by `PUT /latest/api/token` for a TTL, bound
//! to the address that asked and to the instance (its UUID) that held that
//! address then, checked on every request that carries one. When the address
//! passes to another instance, the tokens issued before are worthless.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest TTL EC2 allows.
pub const MAX_TTL_SECS: u64 = 21_600;
/// Live tokens one instance may hold; a new one past this replaces the one
/// that would expire first, so a guest asking in a loop cannot grow the
/// service's memory (EC2 software asks for one per session).
pub const MAX_TOKENS_PER_INSTANCE: usize = 64;

/// Whom a token was issued to, and until when.
#[derive(Debug, Clone)]
struct Holder {
    address: Ipv4Addr,
    instance: String,
    expires: Instant,
}

/// Tokens issued and not yet expired.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Holder>>,
}

impl Tokens {
    /// A new token for the instance `instance` (UUID) asking from `address`,
    /// valid `ttl`.
    pub fn issue(&self, address: Ipv4Addr, instance: &str, ttl: Duration) -> String {
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
        issued.retain(|_, holder| holder.expires > now);
        let mine: Vec<(&String, Instant)> = issued
            .iter()
            .filter(|(_, holder)| holder.instance == instance)
            .map(|(token, holder)| (token, holder.expires))
            .collect();
        if mine.len() >= MAX_TOKENS_PER_INSTANCE
            && let Some(first) = mine.iter().min_by_key(|(_, expires)| *expires)
        {
            let first = first.0.clone();
            issued.remove(&first);
        }
        issued.insert(
            token.clone(),
            Holder {
                address,
                instance: instance.to_owned(),
                expires: now + ttl,
            },
        );
        token
    }

    /// Whether `token` was issued to `address` while the instance `instance`
    /// (the one holding `address` now) held it, and has not expired.
    pub fn valid(&self, token: &str, address: Ipv4Addr, instance: &str) -> bool {
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(
            issued.get(token),
            Some(holder) if holder.address == address
                && holder.instance == instance
                && holder.expires > Instant::now()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_asking_in_a_loop_holds_a_bounded_number_of_tokens() {
        let tokens = Tokens::default();
        let (guest, other) = (Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 4));
        let kept = tokens.issue(other, "other", Duration::from_secs(60));
        let mut last = String::new();
        for n in 0..1_000u64 {
            last = tokens.issue(guest, "guest", Duration::from_secs(60 + n));
        }
        let held = tokens
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        assert_eq!(
            held,
            MAX_TOKENS_PER_INSTANCE + 1,
            "the guest's tokens are capped"
        );
        assert!(
            tokens.valid(&last, guest, "guest"),
            "the newest token works"
        );
        assert!(
            tokens.valid(&kept, other, "other"),
            "another instance's token survives"
        );
    }
}
