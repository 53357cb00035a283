//! The only source of randomness: ChaCha8 streams derived from the run's seed.
//!
//! One seed yields several independent streams (profile, fault schedule, network, clients,
//! disk, nodes). Keeping them apart means that removing one fault from the schedule while
//! shrinking does not shift every later choice of the fault generator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Names the independent random streams of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The fault profile (drawn first).
    Profile = 1,
    /// The fault schedule.
    Faults = 2,
    /// Message delays, loss, duplication.
    Network = 3,
    /// Client operations and think times.
    Clients = 4,
    /// Disk latencies, torn writes, corruption targets.
    Disk = 5,
    /// Seeds handed to the nodes (election timeouts) and runtime choices.
    Nodes = 6,
    /// When and how new leaders are knocked out during leader churn.
    Churn = 7,
}

/// A seeded random generator with the helpers the simulator needs.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// The stream `stream` of seed `seed`.
    pub fn new(seed: u64, stream: Stream) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream as u64);
        SimRng { inner }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.random()
    }

    /// True with probability `p` (clamped to [0, 1]); draws nothing when `p` is 0 so that
    /// a disabled fault does not perturb the stream.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.inner.random_bool(p.min(1.0))
    }

    /// Uniform in `[low, high)`; `low` when the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        self.inner.random_range(low..high)
    }

    /// Uniform in `[low, high)` as a float.
    pub fn range_f64(&mut self, low: f64, high: f64) -> f64 {
        if high <= low {
            return low;
        }
        self.inner.random_range(low..high)
    }

    /// An index into a collection of `len` items; 0 when `len` is 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.range(0, len as u64) as usize
    }

    /// A delay with a long tail: usually in `[base_us, 4 * base_us)`, with probability
    /// `tail` up to `tail_max_us` (log-uniform, so tails of every size occur).
    pub fn delay_us(&mut self, base_us: u64, tail: f64, tail_max_us: u64) -> u64 {
        let normal = self.range(base_us, base_us.saturating_mul(4).max(base_us + 1));
        if self.chance(tail) && tail_max_us > normal {
            let exponent = self.range_f64((normal as f64).ln(), (tail_max_us as f64).ln());
            exponent.exp() as u64
        } else {
            normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_gives_same_numbers() {
        let a: Vec<u64> = {
            let mut r = SimRng::new(7, Stream::Network);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SimRng::new(7, Stream::Network);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut other = SimRng::new(7, Stream::Faults);
        assert_ne!(a[0], other.next_u64(), "streams must differ");
    }

    #[test]
    fn delay_tail_reaches_far_but_stays_bounded() {
        let mut r = SimRng::new(1, Stream::Network);
        let delays: Vec<u64> = (0..2000).map(|_| r.delay_us(100, 0.1, 1_000_000)).collect();
        assert!(delays.iter().all(|&d| (100..=1_000_000).contains(&d)));
        assert!(delays.iter().any(|&d| d > 50_000), "no long tail seen");
        assert!(delays.iter().filter(|&&d| d < 400).count() > 1500);
    }
}
