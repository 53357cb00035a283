//! Linearizability checking of a client history against a sequential [`Model`] (Wing &
//! Gong's search with Lowe's just-in-time linearization and memoization, as Porcupine does
//! it).
//!
//! Linearizability is compositional, so when the model splits operations into partitions
//! ([`Model::partition`], the keys of a key-value store) each partition is checked on its
//! own, which keeps every search small.
//!
//! An operation whose outcome the client never learned (it timed out, or its client gave up)
//! is *indeterminate*: it may have taken effect at any moment after its invocation, or never.
//! It is modelled with a return time of infinity and an unconstrained output. "Never" needs
//! no special case: the search may linearize such an operation after everything else, where
//! its effect is unobservable, so the search succeeds once every *completed* operation is
//! linearized. Indeterminate reads ([`Model::is_read`]) constrain nothing and are dropped up
//! front.
//!
//! The search is bounded by [`CheckLimits::max_steps_per_partition`]; a partition that
//! exhausts it is reported as inconclusive rather than as a violation.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::model::Model;

/// One client operation as recorded by the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued it.
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// What was answered; `None` when the outcome is unknown (indeterminate).
    pub output: Option<O>,
    /// Virtual time of the invocation.
    pub call_us: u64,
    /// Virtual time the answer arrived; `None` when indeterminate.
    pub return_us: Option<u64>,
}

impl<I: fmt::Debug, O: fmt::Debug> fmt::Display for Operation<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.return_us {
            Some(t) => t.to_string(),
            None => "inf".to_string(),
        };
        write!(
            f,
            "client {} {:?} -> {:?} [{}us, {}us]",
            self.client, self.input, self.output, self.call_us, end
        )
    }
}

/// Bounds on the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckLimits {
    /// Search steps (linearization attempts plus backtracks) allowed per partition before
    /// the partition is declared inconclusive.
    pub max_steps_per_partition: u64,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_steps_per_partition: 2_000_000,
        }
    }
}

/// The verdict for a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every partition's history is linearizable.
    Linearizable,
    /// Some partition's history is not linearizable.
    Violation {
        /// The partition ([`Model::partition`]).
        partition: u64,
        /// A human explanation: the longest linearizable prefix found and the operation that
        /// could not be placed.
        detail: String,
    },
    /// No violation found, but some partition exhausted the search budget.
    Inconclusive {
        /// The first partition that ran out of budget.
        partition: u64,
    },
}

/// The outcome of [`check_history`] with search statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Partitions examined.
    pub partitions: usize,
    /// Search steps taken over all partitions.
    pub steps: u64,
}

/// An operation of model `M`'s history.
pub type ModelOperation<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// Checks that `history` is linearizable with respect to `model`.
pub fn check_history<M: Model>(
    model: &M,
    history: &[ModelOperation<M>],
    limits: CheckLimits,
) -> CheckReport {
    let mut partitions: BTreeMap<u64, Vec<&ModelOperation<M>>> = BTreeMap::new();
    for op in history {
        let ops = partitions.entry(model.partition(&op.input)).or_default();
        // An unanswered read constrains nothing.
        if !(op.output.is_none() && model.is_read(&op.input)) {
            ops.push(op);
        }
    }
    let mut steps_total = 0;
    let mut inconclusive = None;
    for (&partition, ops) in &partitions {
        let outcome = PartitionSearch::new(model, ops).run(limits.max_steps_per_partition);
        steps_total += outcome.steps;
        match outcome.result {
            SearchResult::Linearizable => {}
            SearchResult::Exhausted => {
                inconclusive.get_or_insert(partition);
            }
            SearchResult::Violation(detail) => {
                return CheckReport {
                    verdict: Verdict::Violation { partition, detail },
                    partitions: partitions.len(),
                    steps: steps_total,
                };
            }
        }
    }
    let verdict = match inconclusive {
        Some(partition) => Verdict::Inconclusive { partition },
        None => Verdict::Linearizable,
    };
    CheckReport {
        verdict,
        partitions: partitions.len(),
        steps: steps_total,
    }
}

enum SearchResult {
    Linearizable,
    Violation(String),
    Exhausted,
}

struct SearchOutcome {
    result: SearchResult,
    steps: u64,
}

/// Marks "no entry" in the linked list.
const NONE: usize = usize::MAX;

/// One call or return event in the per-key history, kept in a doubly linked list so that
/// lifting an operation out and putting it back are O(1).
#[derive(Clone, Copy, Debug)]
struct ListEntry {
    /// Index of the operation in the per-key slice.
    op: usize,
    /// For a call: the index of its return entry (or NONE when indeterminate).
    /// For a return: NONE.
    partner: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// Set of linearized operations, as bits.
type Bits = Vec<u64>;

struct PartitionSearch<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a ModelOperation<M>],
    /// Index 0 is the head sentinel; events follow in time order.
    list: Vec<ListEntry>,
    completed_ops: usize,
}

impl<'a, M: Model> PartitionSearch<'a, M> {
    fn new(model: &'a M, ops: &'a [&'a ModelOperation<M>]) -> Self {
        // (time, kind, op): calls sort before returns at equal times, so operations that
        // touch at one instant count as concurrent (the lenient reading).
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call_us, 0, i));
            if let Some(t) = op.return_us {
                // A return before its call would be a recording bug; clamp defensively.
                events.push((t.max(op.call_us), 1, i));
            }
        }
        events.sort_unstable();
        let mut list = Vec::with_capacity(events.len() + 1);
        list.push(ListEntry {
            op: NONE,
            partner: NONE,
            is_call: false,
            prev: NONE,
            next: NONE,
        });
        let mut return_slot = vec![NONE; ops.len()];
        for (_, kind, op) in &events {
            let position = list.len();
            if *kind == 1 {
                return_slot[*op] = position;
            }
            list.push(ListEntry {
                op: *op,
                partner: NONE,
                is_call: *kind == 0,
                prev: position - 1,
                next: NONE,
            });
            list[position - 1].next = position;
        }
        for entry in list.iter_mut().skip(1) {
            if entry.is_call {
                entry.partner = return_slot[entry.op];
            }
        }
        let completed_ops = ops.iter().filter(|op| op.return_us.is_some()).count();
        PartitionSearch {
            model,
            ops,
            list,
            completed_ops,
        }
    }

    fn unlink(&mut self, at: usize) {
        let ListEntry { prev, next, .. } = self.list[at];
        self.list[prev].next = next;
        if next != NONE {
            self.list[next].prev = prev;
        }
    }

    fn relink(&mut self, at: usize) {
        let ListEntry { prev, next, .. } = self.list[at];
        self.list[prev].next = at;
        if next != NONE {
            self.list[next].prev = at;
        }
    }

    /// Removes a call entry and its return entry from the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let partner = self.list[call].partner;
        if partner != NONE {
            self.unlink(partner);
        }
    }

    /// Undoes [`PartitionSearch::lift`] (in reverse order, as dancing links require).
    fn unlift(&mut self, call: usize) {
        let partner = self.list[call].partner;
        if partner != NONE {
            self.relink(partner);
        }
        self.relink(call);
    }

    fn run(mut self, max_steps: u64) -> SearchOutcome {
        let mut state = self.model.init();
        let mut linearized: Bits = vec![0; self.ops.len().div_ceil(64)];
        // Lookup only (never iterated), so hash order cannot leak into results.
        let mut cache: HashSet<(Bits, M::State)> = HashSet::new();
        // Each frame: (call entry lifted, state before it).
        let mut stack: Vec<(usize, M::State)> = Vec::new();
        let mut completed_done = 0;
        let mut steps = 0u64;
        let mut deepest: Vec<usize> = Vec::new();
        let mut blocked_at = NONE;
        let mut cursor = self.list[0].next;
        loop {
            if completed_done == self.completed_ops {
                return SearchOutcome {
                    result: SearchResult::Linearizable,
                    steps,
                };
            }
            steps += 1;
            if steps > max_steps {
                return SearchOutcome {
                    result: SearchResult::Exhausted,
                    steps,
                };
            }
            // Invariant: while completed operations remain, the list still holds their
            // return entries, so walking forward from any call reaches a return before the
            // end; `cursor` is never NONE here.
            let entry = self.list[cursor];
            if entry.is_call {
                let op = self.ops[entry.op];
                let next_state = self.model.step(&state, &op.input, op.output.as_ref());
                let mut advanced = false;
                if let Some(next_state) = next_state {
                    let mut bits = linearized.clone();
                    bits[entry.op / 64] |= 1 << (entry.op % 64);
                    if cache.insert((bits.clone(), next_state.clone())) {
                        linearized = bits;
                        stack.push((cursor, std::mem::replace(&mut state, next_state)));
                        if op.return_us.is_some() {
                            completed_done += 1;
                        }
                        self.lift(cursor);
                        cursor = self.list[0].next;
                        advanced = true;
                    }
                }
                if !advanced {
                    cursor = entry.next;
                }
            } else {
                if stack.len() >= deepest.len() {
                    deepest = stack.iter().map(|(call, _)| self.list[*call].op).collect();
                    blocked_at = entry.op;
                }
                let Some((call, previous)) = stack.pop() else {
                    return SearchOutcome {
                        result: SearchResult::Violation(self.explain(&deepest, blocked_at)),
                        steps,
                    };
                };
                let op_index = self.list[call].op;
                linearized[op_index / 64] &= !(1 << (op_index % 64));
                if self.ops[op_index].return_us.is_some() {
                    completed_done -= 1;
                }
                state = previous;
                self.unlift(call);
                cursor = self.list[call].next;
            }
        }
    }

    fn explain(&self, deepest: &[usize], blocked_at: usize) -> String {
        let mut text = format!(
            "no linearization of {} operations; longest linearizable prefix ({} ops):",
            self.ops.len(),
            deepest.len()
        );
        let mut state = self.model.init();
        for &op in deepest {
            let op = self.ops[op];
            state = self
                .model
                .step(&state, &op.input, op.output.as_ref())
                .unwrap_or(state);
            text.push_str(&format!("\n  {op}  => state {state:?}"));
        }
        if blocked_at != NONE {
            text.push_str(&format!(
                "\n  then this operation must take effect but cannot: {}",
                self.ops[blocked_at]
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register per key: `(key, Some(v))` writes v, `(key, None)` reads.
    struct Registers;

    impl Model for Registers {
        type State = Option<u64>;
        type Input = (u64, Option<u64>);
        type Output = Option<u64>;

        fn init(&self) -> Option<u64> {
            None
        }

        fn step(
            &self,
            state: &Option<u64>,
            input: &(u64, Option<u64>),
            output: Option<&Option<u64>>,
        ) -> Option<Option<u64>> {
            match input.1 {
                Some(value) => Some(Some(value)),
                None => output.is_none_or(|read| read == state).then_some(*state),
            }
        }

        fn partition(&self, input: &(u64, Option<u64>)) -> u64 {
            input.0
        }

        fn is_read(&self, input: &(u64, Option<u64>)) -> bool {
            input.1.is_none()
        }
    }

    type Op = Operation<(u64, Option<u64>), Option<u64>>;

    fn write(client: u64, value: u64, call: u64, ret: Option<u64>) -> Op {
        Operation {
            client,
            input: (0, Some(value)),
            output: ret.map(|_| None),
            call_us: call,
            return_us: ret,
        }
    }

    fn read(client: u64, seen: Option<u64>, call: u64, ret: u64) -> Op {
        Operation {
            client,
            input: (0, None),
            output: Some(seen),
            call_us: call,
            return_us: Some(ret),
        }
    }

    fn verdict(history: &[Op]) -> Verdict {
        check_history(&Registers, history, CheckLimits::default()).verdict
    }

    #[test]
    fn a_read_after_a_completed_write_must_see_it() {
        let ok = [write(1, 7, 0, Some(10)), read(2, Some(7), 20, 30)];
        assert_eq!(verdict(&ok), Verdict::Linearizable);
        let stale = [write(1, 7, 0, Some(10)), read(2, None, 20, 30)];
        match verdict(&stale) {
            Verdict::Violation { partition, detail } => {
                assert_eq!(partition, 0);
                assert!(detail.contains("cannot"), "{detail}");
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn an_indeterminate_write_may_apply_late_or_never_but_not_vanish() {
        let lost = write(1, 5, 0, None);
        let late = [
            lost.clone(),
            read(2, None, 10, 20),
            read(2, Some(5), 30, 40),
        ];
        assert_eq!(verdict(&late), Verdict::Linearizable);
        let never = [lost.clone(), read(2, None, 1000, 1010)];
        assert_eq!(verdict(&never), Verdict::Linearizable);
        let vanished = [lost, read(2, Some(5), 10, 20), read(2, None, 30, 40)];
        assert!(matches!(verdict(&vanished), Verdict::Violation { .. }));
    }

    #[test]
    fn partitions_are_checked_independently() {
        let mut a = write(1, 1, 0, Some(10));
        a.input.0 = 1;
        let mut b = read(2, None, 20, 30);
        b.input.0 = 2;
        let report = check_history(&Registers, &[a, b], CheckLimits::default());
        assert_eq!(report.verdict, Verdict::Linearizable);
        assert_eq!(report.partitions, 2);
    }

    #[test]
    fn an_exhausted_budget_is_inconclusive_not_a_violation() {
        let mut history: Vec<Op> = (0..8).map(|i| write(i, i, 0, None)).collect();
        history.push(read(99, Some(1000), 5, 6));
        let limits = CheckLimits {
            max_steps_per_partition: 3,
        };
        let report = check_history(&Registers, &history, limits);
        assert_eq!(report.verdict, Verdict::Inconclusive { partition: 0 });
        let report = check_history(&Registers, &history, CheckLimits::default());
        assert!(matches!(report.verdict, Verdict::Violation { .. }));
    }
}
