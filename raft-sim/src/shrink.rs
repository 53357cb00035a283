//! Shrinking a failing run: delta debugging over the fault schedule. The seed (and so the
//! profile, the schedule and every other random stream) stays the same; only the set of
//! schedule entries in force gets smaller, as long as the run still fails.

use crate::sim::{RunReport, SimOptions};

/// The result of shrinking.
#[derive(Debug)]
pub struct Shrunk {
    /// Schedule entries still in force.
    pub kept_faults: Vec<usize>,
    /// The failing run with those entries.
    pub report: RunReport,
    /// Runs spent.
    pub runs: usize,
}

/// Shrinks the failing run `failed` (made with `options`), spending at most `max_runs`
/// simulations, each made by `run` (for example
/// `|options| Simulation::new(options, MyWorkload::new()).run()`). Returns `None` if the
/// run did not fail.
pub fn shrink(
    options: &SimOptions,
    failed: RunReport,
    max_runs: usize,
    mut run: impl FnMut(SimOptions) -> RunReport,
) -> Option<Shrunk> {
    // Runs `options` restricted to `faults`.
    let mut run_with = |options: &SimOptions, faults: &[usize]| {
        let mut options = options.clone();
        options.only_faults = Some(faults.to_vec());
        options.trace = false;
        options.timeline = false;
        run(options)
    };
    if failed.passed() {
        return None;
    }
    let mut kept = failed.kept_faults.clone();
    let mut best = failed;
    let mut runs = 0;
    // First the cheapest question: does it fail with no faults at all?
    if !kept.is_empty() && runs < max_runs {
        runs += 1;
        let report = run_with(options, &[]);
        if !report.passed() {
            return Some(Shrunk {
                kept_faults: Vec::new(),
                report,
                runs,
            });
        }
    }
    let mut chunk = kept.len().div_ceil(2).max(1);
    while !kept.is_empty() && runs < max_runs {
        let mut removed_any = false;
        let mut start = 0;
        while start < kept.len() && runs < max_runs {
            let end = (start + chunk).min(kept.len());
            let candidate: Vec<usize> = kept[..start].iter().chain(&kept[end..]).copied().collect();
            runs += 1;
            let report = run_with(options, &candidate);
            if report.passed() {
                start = end;
            } else {
                kept = candidate;
                best = report;
                removed_any = true;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        } else {
            chunk = chunk.min(kept.len().div_ceil(2)).max(1);
        }
    }
    Some(Shrunk {
        kept_faults: kept,
        report: best,
        runs,
    })
}
