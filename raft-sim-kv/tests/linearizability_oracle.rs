//! Cross-checks the simulator's linearizability checker against two independent oracles on
//! small random histories: a brute-force search over every real-time-respecting order, and
//! the Wing-Gong-Lowe checker of the `todc-utils` crate.
//!
//! Method: draw a small concurrent history, mostly produced by a real linearizable execution
//! (outputs computed at random linearization points) and sometimes with one output
//! corrupted, so both verdicts occur often. Indeterminate operations (unknown outcome) are
//! expanded for the oracles: every subset of them is tried as "took effect" (answered at the
//! end of the history) while the rest are dropped.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use raft_sim::linearizability::{CheckLimits, Verdict, check_history};
use raft_sim_kv::model::{
    KvInput, KvModel, KvOp, KvOperation as Operation, KvOutput, Value, model_step,
};
use todc_utils::linearizability::WGLChecker;
use todc_utils::linearizability::history::{Action, History};
use todc_utils::specifications::Specification;

/// todc specification wrapping the same sequential model, with an unknown output accepted.
struct KvSpec;

impl Specification for KvSpec {
    type State = Option<Value>;
    type Operation = (KvInput, Option<KvOutput>);

    fn init() -> Self::State {
        None
    }

    fn apply(operation: &Self::Operation, state: &Self::State) -> (bool, Self::State) {
        match model_step(*state, operation.0, operation.1) {
            Some(next) => (true, next),
            None => (false, *state),
        }
    }
}

fn precedes(a: &Operation, b: &Operation) -> bool {
    matches!(a.return_us, Some(t) if t < b.call_us)
}

/// Tries every order of `ops` that respects real time.
fn brute_force(ops: &[&Operation]) -> bool {
    fn search(ops: &[&Operation], used: &mut Vec<bool>, state: Option<Value>) -> bool {
        if used.iter().all(|u| *u) {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // `i` may go next only if no unused operation must precede it.
            let blocked = (0..ops.len()).any(|j| !used[j] && j != i && precedes(ops[j], ops[i]));
            if blocked {
                continue;
            }
            if let Some(next) = model_step(state, ops[i].input.input, ops[i].output) {
                used[i] = true;
                if search(ops, used, next) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    search(ops, &mut vec![false; ops.len()], None)
}

/// Every variant of the history where each indeterminate operation either took effect
/// (kept, answered at the end) or never did (dropped).
fn variants(history: &[Operation]) -> Vec<Vec<&Operation>> {
    let unknown: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].return_us.is_none())
        .collect();
    (0..1u32 << unknown.len())
        .map(|mask| {
            history
                .iter()
                .enumerate()
                .filter(|(i, _)| match unknown.iter().position(|u| u == i) {
                    Some(bit) => mask & (1 << bit) != 0,
                    None => true,
                })
                .map(|(_, op)| op)
                .collect()
        })
        .collect()
}

fn todc_linearizable(ops: &[&Operation]) -> bool {
    if ops.is_empty() {
        return true;
    }
    // (time, 0 = call / 1 = response, op): calls first at equal times, as in our checker.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call_us, 0, i));
        events.push((op.return_us.unwrap_or(u64::MAX), 1, i));
    }
    events.sort_unstable();
    let actions = events
        .into_iter()
        .map(|(_, kind, i)| {
            let operation = (ops[i].input.input, ops[i].output);
            let action = if kind == 0 {
                Action::Call(operation)
            } else {
                Action::Response(operation)
            };
            (i, action)
        })
        .collect();
    WGLChecker::<KvSpec>::is_linearizable(History::from_actions(actions))
}

/// A strategy for histories of up to `max_ops` operations on one key.
fn history_strategy(max_ops: usize) -> impl Strategy<Value = Vec<Operation>> {
    let op = (0u8..4, 0u64..3, 0u64..40, 1u64..30, 0u64..100, 0u8..10);
    (
        proptest::collection::vec(op, 1..=max_ops),
        any::<u64>(),
        0u8..3,
    )
        .prop_map(|(raw, noise, corrupt_mode)| build_history(&raw, noise, corrupt_mode))
}

fn build_history(
    raw: &[(u8, u64, u64, u64, u64, u8)],
    noise: u64,
    corrupt_mode: u8,
) -> Vec<Operation> {
    // Lay out intervals and a linearization point inside each, then compute the outputs a
    // correct system would give when operations take effect at those points.
    let mut ops: Vec<(u64, Operation)> = raw
        .iter()
        .enumerate()
        .map(|(i, &(kind, value, start, length, point_pct, unknown))| {
            let input = match kind {
                0 => KvInput::Get,
                1 => KvInput::Put(value + 1),
                2 => KvInput::Delete,
                _ => KvInput::Cas {
                    expected: value + 1,
                    new: value + 2 + i as u64,
                },
            };
            let point = start + length * point_pct / 100;
            let indeterminate = unknown < 2 && input != KvInput::Get;
            let op = Operation {
                client: i as u64,
                input: KvOp { key: 0, input },
                output: None,
                call_us: start,
                return_us: (!indeterminate).then_some(start + length),
            };
            (point, op)
        })
        .collect();
    ops.sort_by_key(|(point, op)| (*point, op.client));
    let mut state: Option<Value> = None;
    for (_, op) in &mut ops {
        let output = match op.input.input {
            KvInput::Get => KvOutput::Get(state),
            KvInput::Put(_) => KvOutput::Put,
            KvInput::Delete => KvOutput::Delete {
                existed: state.is_some(),
            },
            KvInput::Cas { expected, .. } => KvOutput::Cas {
                swapped: state == Some(expected),
            },
        };
        // An indeterminate operation sometimes never takes effect.
        let takes_effect = op.return_us.is_some() || !noise.is_multiple_of(3);
        if takes_effect {
            state = model_step(state, op.input.input, Some(output))
                .expect("output computed from state");
        }
        if op.return_us.is_some() {
            op.output = Some(output);
        }
    }
    let mut history: Vec<Operation> = ops.into_iter().map(|(_, op)| op).collect();
    if corrupt_mode == 0 && !history.is_empty() {
        let victim = (noise as usize) % history.len();
        history[victim].output = match history[victim].output {
            Some(KvOutput::Get(v)) => Some(KvOutput::Get(v.map_or(Some(1), |v| v.checked_add(1)))),
            Some(KvOutput::Delete { existed }) => Some(KvOutput::Delete { existed: !existed }),
            Some(KvOutput::Cas { swapped }) => Some(KvOutput::Cas { swapped: !swapped }),
            other => other,
        };
    }
    history
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Goal: our checker agrees with both independent oracles on every small history.
    #[test]
    fn checker_agrees_with_brute_force_and_todc(history in history_strategy(7)) {
        let ours = match check_history(&KvModel, &history, CheckLimits::default()).verdict {
            Verdict::Linearizable => true,
            Verdict::Violation { .. } => false,
            Verdict::Inconclusive { .. } => panic!("tiny history exhausted the budget"),
        };
        let expanded = variants(&history);
        let brute = expanded.iter().any(|ops| brute_force(ops));
        let todc = expanded.iter().any(|ops| todc_linearizable(ops));
        prop_assert_eq!(ours, brute, "brute force disagrees on {:#?}", history);
        prop_assert_eq!(ours, todc, "todc-utils disagrees on {:#?}", history);
    }
}

/// Goal: the generator is not degenerate; both verdicts occur in a fixed sample, so the
/// agreement above is about real decisions.
#[test]
fn generated_histories_cover_both_verdicts() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = history_strategy(7);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..300 {
        let history = strategy.new_tree(&mut runner).expect("strategy").current();
        match check_history(&KvModel, &history, CheckLimits::default()).verdict {
            Verdict::Linearizable => yes += 1,
            _ => no += 1,
        }
    }
    assert!(yes > 50 && no > 50, "linearizable {yes}, not {no}");
}
