//! Placements made lately, so a request delivered twice (the broker
//! redelivers what it did not see acked, after a restart say) goes to the
//! host chosen the first time: building it there again is a no-op, while
//! placing it anew would start a second copy on another host.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::scheduler::Limits;

/// How long a placement is remembered: longer than any redelivery waits.
const KEEP: Duration = Duration::from_secs(15 * 60);
/// At most this many are remembered; the oldest go first.
const MOST: usize = 200_000;

/// An instance and how many hosts were tried before this placement.
type Attempt = (InstanceId, usize);

/// Where an attempt went, with the limits it was sent, and when.
type Choice = (HostName, Option<Limits>, Instant);

/// Which host each (instance, attempt) went to.
#[derive(Debug, Default)]
pub struct Placed {
    chosen: Mutex<HashMap<Attempt, Choice>>,
}

impl Placed {
    /// The host and limits attempt `attempt` (hosts tried before it) of
    /// `id` was given, if it was placed lately.
    pub fn get(&self, id: InstanceId, attempt: usize) -> Option<(HostName, Option<Limits>)> {
        let chosen = self.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        chosen
            .get(&(id, attempt))
            .filter(|(_, _, at)| at.elapsed() < KEEP)
            .map(|(host, limits, _)| (host.clone(), *limits))
    }

    /// Remembers a placement.
    pub fn insert(&self, id: InstanceId, attempt: usize, host: HostName, limits: Option<Limits>) {
        let mut chosen = self.chosen.lock().unwrap_or_else(PoisonError::into_inner);
        if chosen.len() >= MOST {
            chosen.retain(|_, (_, _, at)| at.elapsed() < KEEP);
            if chosen.len() >= MOST {
                let oldest = chosen
                    .iter()
                    .min_by_key(|(_, (_, _, at))| *at)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    chosen.remove(&k);
                }
            }
        }
        chosen.insert((id, attempt), (host, limits, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_is_found_again_per_attempt() {
        let placed = Placed::default();
        let id = InstanceId::new();
        let host: HostName = "node-1".parse().expect("host");
        placed.insert(id, 0, host.clone(), None);
        assert_eq!(placed.get(id, 0), Some((host, None)));
        // A reschedule (one host tried) is a new placement.
        assert_eq!(placed.get(id, 1), None);
        assert_eq!(placed.get(InstanceId::new(), 0), None);
    }
}
