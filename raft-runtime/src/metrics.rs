//! Counters and latency histograms, updated lock-free by the driver and the lanes and read
//! as a [`Metrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point-in-time copy of a node's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Proposals submitted through this node.
    pub proposals_submitted: u64,
    /// Proposals that returned a state machine response.
    pub proposals_applied: u64,
    /// Proposals that failed (any [`crate::Error`]).
    pub proposals_failed: u64,
    /// Reads submitted through this node.
    pub reads_submitted: u64,
    /// Reads that failed.
    pub reads_failed: u64,
    /// Lease reads answered from the state machine beside the driver (the fast path).
    pub reads_lease_fast: u64,
    /// Lease reads the fast path could not answer (no grant, lapsed, not applied far
    /// enough, state machine busy), sent through the driver.
    pub reads_lease_fallback: u64,
    /// Log entries applied to the state machine (all kinds).
    pub entries_applied: u64,
    /// Committed commands the state machine could not decode (answered with an error).
    pub commands_invalid: u64,
    /// Disk-lane batches (one sync each at most).
    pub disk_batches: u64,
    /// Disk-lane operations (persist batches, snapshot chunks, compactions).
    pub disk_ops: u64,
    /// Syncs issued by the disk lane.
    pub fsyncs: u64,
    /// Latency of each disk-lane sync.
    pub fsync_latency: LatencySummary,
    /// Latency of each apply batch (state machine time).
    pub apply_latency: LatencySummary,
    /// Messages handed to the transport (snapshot chunks included).
    pub messages_sent: u64,
    /// Messages received from the transport.
    pub messages_received: u64,
    /// Snapshot chunks sent to lagging peers.
    pub snapshot_chunks_sent: u64,
    /// Snapshots of the local state machine saved.
    pub snapshots_saved: u64,
    /// Snapshots that failed to save (the node keeps running; the log is not compacted).
    pub snapshots_failed: u64,
    /// State machine restores from a snapshot received from the leader.
    pub snapshots_restored: u64,
    /// Logical ticks fed to the core.
    pub ticks: u64,
    /// Times the driver woke up and ran a batch.
    pub driver_batches: u64,
    /// Role changes observed.
    pub role_changes: u64,
}

/// Summary of a latency histogram, in microseconds. Quantiles are bucket upper bounds
/// (within 12.5% of the true value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest sample (exact).
    pub max_us: u64,
    /// Mean (exact).
    pub mean_us: u64,
}

/// Sub-buckets per power of two: 8 gives at most 12.5% quantile error.
const SUB_BUCKET_BITS: u32 = 3;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Covers up to 2^40 us (12 days) before the last bucket absorbs the rest.
const BUCKETS: usize = 41 * SUB_BUCKETS;

/// A lock-free log-linear histogram of microsecond latencies.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

fn bucket_of(value_us: u64) -> usize {
    if value_us < SUB_BUCKETS as u64 {
        return value_us as usize;
    }
    let magnitude = 63 - value_us.leading_zeros();
    let shift = magnitude - SUB_BUCKET_BITS;
    let sub = ((value_us >> shift) as usize) & (SUB_BUCKETS - 1);
    let bucket = (magnitude - SUB_BUCKET_BITS + 1) as usize * SUB_BUCKETS + sub;
    bucket.min(BUCKETS - 1)
}

/// The largest value that falls in `bucket`.
fn bucket_upper_bound(bucket: usize) -> u64 {
    if bucket < SUB_BUCKETS {
        return bucket as u64;
    }
    let magnitude = (bucket / SUB_BUCKETS) as u32 + SUB_BUCKET_BITS - 1;
    let sub = (bucket % SUB_BUCKETS) as u64;
    let shift = magnitude - SUB_BUCKET_BITS;
    ((SUB_BUCKETS as u64 + sub + 1) << shift) - 1
}

impl Histogram {
    pub(crate) fn record(&self, duration: Duration) {
        let value_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(value_us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(value_us, Ordering::Relaxed);
        self.max_us.fetch_max(value_us, Ordering::Relaxed);
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let quantile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (bucket, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return bucket_upper_bound(bucket);
                }
            }
            bucket_upper_bound(BUCKETS - 1)
        };
        let max_us = self.max_us.load(Ordering::Relaxed);
        LatencySummary {
            count,
            p50_us: quantile(0.5).min(max_us),
            p99_us: quantile(0.99).min(max_us),
            max_us,
            mean_us: self.sum_us.load(Ordering::Relaxed) / count.max(1),
        }
    }
}

/// The live counters behind [`Metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) proposals_submitted: AtomicU64,
    pub(crate) proposals_applied: AtomicU64,
    pub(crate) proposals_failed: AtomicU64,
    pub(crate) reads_submitted: AtomicU64,
    pub(crate) reads_failed: AtomicU64,
    pub(crate) reads_lease_fast: AtomicU64,
    pub(crate) reads_lease_fallback: AtomicU64,
    pub(crate) entries_applied: AtomicU64,
    pub(crate) commands_invalid: AtomicU64,
    pub(crate) disk_batches: AtomicU64,
    pub(crate) disk_ops: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) fsync_latency: Histogram,
    pub(crate) apply_latency: Histogram,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) snapshot_chunks_sent: AtomicU64,
    pub(crate) snapshots_saved: AtomicU64,
    pub(crate) snapshots_failed: AtomicU64,
    pub(crate) snapshots_restored: AtomicU64,
    pub(crate) ticks: AtomicU64,
    pub(crate) driver_batches: AtomicU64,
    pub(crate) role_changes: AtomicU64,
}

impl Counters {
    /// Copies the engine's own counts (the lanes count disk work and syncs live, as they
    /// happen).
    pub(crate) fn copy_engine(&self, engine: &raft_host::EngineMetrics) {
        let set = |counter: &AtomicU64, value: u64| counter.store(value, Ordering::Relaxed);
        set(&self.entries_applied, engine.entries_applied);
        set(&self.commands_invalid, engine.commands_invalid);
        set(&self.snapshot_chunks_sent, engine.snapshot_chunks_sent);
        set(&self.snapshots_saved, engine.snapshots_saved);
        set(&self.snapshots_failed, engine.snapshots_failed);
        set(&self.snapshots_restored, engine.snapshots_restored);
        set(&self.ticks, engine.ticks);
        set(&self.role_changes, engine.role_changes);
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            proposals_submitted: get(&self.proposals_submitted),
            proposals_applied: get(&self.proposals_applied),
            proposals_failed: get(&self.proposals_failed),
            reads_submitted: get(&self.reads_submitted),
            reads_failed: get(&self.reads_failed),
            reads_lease_fast: get(&self.reads_lease_fast),
            reads_lease_fallback: get(&self.reads_lease_fallback),
            entries_applied: get(&self.entries_applied),
            commands_invalid: get(&self.commands_invalid),
            disk_batches: get(&self.disk_batches),
            disk_ops: get(&self.disk_ops),
            fsyncs: get(&self.fsyncs),
            fsync_latency: self.fsync_latency.summary(),
            apply_latency: self.apply_latency.summary(),
            messages_sent: get(&self.messages_sent),
            messages_received: get(&self.messages_received),
            snapshot_chunks_sent: get(&self.snapshot_chunks_sent),
            snapshots_saved: get(&self.snapshots_saved),
            snapshots_failed: get(&self.snapshots_failed),
            snapshots_restored: get(&self.snapshots_restored),
            ticks: get(&self.ticks),
            driver_batches: get(&self.driver_batches),
            role_changes: get(&self.role_changes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Goal: every value lands in a bucket whose upper bound is at least the value and
        /// within 12.5% of it (the quantile error bound the docs promise).
        #[test]
        fn bucket_bounds_hold(value in 0u64..(1u64 << 40)) {
            let bound = bucket_upper_bound(bucket_of(value));
            prop_assert!(bound >= value);
            prop_assert!(bound - value <= value / 8 + 1);
        }
    }

    /// Goal: quantiles of a known distribution come out right within the error bound.
    #[test]
    fn summary_quantiles() {
        let histogram = Histogram::default();
        for us in 1..=1000u64 {
            histogram.record(Duration::from_micros(us));
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.max_us, 1000);
        assert!((500..=563).contains(&summary.p50_us), "{summary:?}");
        assert!((990..=1000).contains(&summary.p99_us), "{summary:?}");
        assert_eq!(summary.mean_us, 500);
        assert_eq!(Histogram::default().summary(), LatencySummary::default());
    }
}
