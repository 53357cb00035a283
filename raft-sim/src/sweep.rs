//! Many seeds on all cores: each seed's run is independent and deterministic, so seeds are
//! handed out to threads and the results gathered in seed order.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sim::RunReport;

/// Runs `run(seed)` for every seed of `seeds` on `jobs` threads (at least one) and returns
/// the reports in seed order. `run` builds and runs one simulation, for example
/// `|seed| Simulation::new(SimOptions::standard(seed), MyWorkload::new()).run()`.
///
/// Reports keep what their options asked for, so leave `trace` and `timeline` off for
/// long sweeps; rerun a failing seed with them on (it replays bit for bit).
pub fn sweep(
    seeds: Range<u64>,
    jobs: usize,
    run: impl Fn(u64) -> RunReport + Sync,
) -> Vec<RunReport> {
    let next = AtomicU64::new(seeds.start);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let report = run(seed);
                    // A poisoned lock means another worker panicked; its panic ends the
                    // sweep when the scope joins, so keep going with the data.
                    done.lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(report);
                }
            });
        }
    });
    let mut reports = done
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reports.sort_by_key(|report| report.seed);
    reports
}
