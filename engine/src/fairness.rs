//! Fairness, in two parts.
//!
//! Between apps: a delivery's place in the queue is its fair key (0010_fair_queue.sql), so that an
//! app publishing a flood queues behind apps that have no backlog instead of ahead of them. The
//! constants here set it; the publish and claim statements apply them.
//!
//! Of a worker's slots: an endpoint whose requests hang (an attempt has run longer than
//! [`HANGING_AFTER`]) may hold at most a share of the slots until one of its attempts answers
//! quickly again, so that it cannot starve the other endpoints before its circuit opens. Fast
//! endpoints are never capped: one busy endpoint may use every slot. Pure bookkeeping; the claim
//! statement applies the quotas.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::ids::EndpointId;

/// The delivery rate each app may publish at without a backlog of fair keys building up:
/// an app that publishes faster is served after apps below it, by as much as it is ahead.
/// Claiming is work-conserving, so this is no limit: an app alone is delivered at full speed.
pub const FAIR_RATE_PER_APP: f64 = 100.0;

/// [`FAIR_RATE_PER_APP`] as the distance between consecutive fair keys of an app.
pub const FAIR_SPACING_MS: f64 = 1000.0 / FAIR_RATE_PER_APP;

/// How far ahead of now a fair key may lie, which is also how far ahead the claim looks. A flood
/// larger than what the workers deliver in this time is fair for its newest part only: its
/// deliveries published more than this long ago go first. Longer means fairness over larger
/// floods, and claims that pass over more not-yet-due retries when the queue is short.
pub const FAIR_HORIZON: Duration = Duration::from_secs(300);

/// An attempt running this long marks its endpoint as hanging: healthy receivers answer in
/// milliseconds to a few hundred.
pub const HANGING_AFTER: Duration = Duration::from_secs(1);

/// The share of a worker's slots a hanging endpoint may hold: a quarter.
const SHARE_DIVISOR: usize = 4;

/// Which endpoints hang, and how many more slots each may take.
#[derive(Debug)]
pub struct SlotShares {
    share: usize,
    hanging: HashSet<EndpointId>,
}

impl SlotShares {
    pub fn new(concurrency: usize) -> Self {
        Self {
            share: (concurrency / SHARE_DIVISOR).max(1),
            hanging: HashSet::new(),
        }
    }

    /// An attempt of `endpoint` finished after `took`: a quick answer clears the mark.
    pub fn finished(&mut self, endpoint: EndpointId, took: Duration) {
        if took < HANGING_AFTER {
            self.hanging.remove(&endpoint);
        }
    }

    /// Marks the endpoints with an attempt in flight longer than [`HANGING_AFTER`], then returns
    /// each hanging endpoint's quota for the next claim: its share less what it holds.
    pub fn quotas(
        &mut self,
        in_flight: impl IntoIterator<Item = (EndpointId, Instant)>,
        now: Instant,
    ) -> Vec<(EndpointId, usize)> {
        let mut held: HashMap<EndpointId, usize> = HashMap::new();
        for (endpoint, started) in in_flight {
            *held.entry(endpoint).or_default() += 1;
            if now.saturating_duration_since(started) >= HANGING_AFTER {
                self.hanging.insert(endpoint);
            }
        }
        let mut quotas: Vec<(EndpointId, usize)> = self
            .hanging
            .iter()
            .map(|e| {
                let holds = held.get(e).copied().unwrap_or(0);
                (*e, self.share.saturating_sub(holds))
            })
            .collect();
        quotas.sort_by_key(|(e, _)| e.0);
        quotas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(n: u128) -> EndpointId {
        EndpointId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn only_endpoints_with_a_long_attempt_are_capped_and_a_quick_answer_frees_them() {
        let now = Instant::now();
        let long_ago = now - Duration::from_secs(2);
        let mut shares = SlotShares::new(16);
        // Endpoint 1: five attempts, one of them hanging. Endpoint 2: ten quick ones.
        let mut in_flight = vec![(endpoint(1), long_ago)];
        in_flight.extend((0..4).map(|_| (endpoint(1), now)));
        in_flight.extend((0..10).map(|_| (endpoint(2), now)));
        assert_eq!(shares.quotas(in_flight.clone(), now), [(endpoint(1), 0)]);
        // It stays capped while its attempts hang, with room again as they end ...
        assert_eq!(
            shares.quotas(vec![(endpoint(1), now)], now),
            [(endpoint(1), 3)]
        );
        shares.finished(endpoint(1), Duration::from_secs(2));
        assert_eq!(shares.quotas(Vec::new(), now), [(endpoint(1), 4)]);
        // ... until one answers quickly.
        shares.finished(endpoint(1), Duration::from_millis(30));
        assert!(shares.quotas(Vec::new(), now).is_empty());
    }

    #[test]
    fn a_worker_with_few_slots_still_gives_a_hanging_endpoint_one() {
        let now = Instant::now();
        let mut shares = SlotShares::new(2);
        let quotas = shares.quotas(vec![(endpoint(1), now - Duration::from_secs(5))], now);
        assert_eq!(quotas, [(endpoint(1), 0)]);
        assert_eq!(shares.quotas(Vec::new(), now), [(endpoint(1), 1)]);
    }
}
