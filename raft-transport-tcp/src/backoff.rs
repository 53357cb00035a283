//! Reconnect delays: exponential growth with jitter.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The delays between reconnect attempts to one peer.
///
/// Failure `n` (counting from 0) waits a delay drawn uniformly from `[d/2, d]` where
/// `d = min(max, min * 2^n)`. The random half spreads out peers that lost the same node at
/// the same moment, so they do not all redial in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// A backoff between `min` and `max` whose jitter is drawn from `seed`.
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The delay to wait after one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        // 2^20 times any sane minimum is past any sane maximum; capping the exponent keeps
        // the multiplication from overflowing.
        let factor = 1u32 << self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.min.saturating_mul(factor).min(self.max);
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        let floor_us = ceiling_us / 2;
        Duration::from_micros(self.rng.random_range(floor_us..=ceiling_us))
    }

    /// Forgets past failures, after a connection succeeded.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A seed that differs between the links of one node and between runs, for jitter only.
pub(crate) fn jitter_seed(node_id: u64, peer_id: u64) -> u64 {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    node_id.rotate_left(32) ^ peer_id ^ u64::from(now_ns).rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: delays double from the minimum, stay within [half, full] of the nominal delay,
    /// stop growing at the maximum, and start over after a reset.
    #[test]
    fn delays_grow_jitter_and_cap() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        for seed in 0..20 {
            let mut backoff = Backoff::new(min, max, seed);
            for failure in 0..30u32 {
                let nominal = min.saturating_mul(1 << failure.min(20)).min(max);
                let delay = backoff.next_delay();
                assert!(
                    delay <= nominal,
                    "failure {failure}: {delay:?} > {nominal:?}"
                );
                assert!(
                    delay >= nominal / 2,
                    "failure {failure}: {delay:?} too short"
                );
            }
            backoff.reset();
            assert!(backoff.next_delay() <= min);
        }
    }

    /// Goal: jitter actually varies, so peers do not retry in lockstep.
    #[test]
    fn jitter_varies_between_seeds() {
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|seed| {
                Backoff::new(Duration::from_millis(100), Duration::from_secs(1), seed).next_delay()
            })
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
