//! Linearizability checking of a key-value history (Wing & Gong's search with Lowe's
//! just-in-time linearization and memoization, as Porcupine does it).
//!
//! Every operation touches one key, and linearizability is compositional, so the history is
//! split per key and each key is checked on its own with a register-like model: state
//! `Option<Value>`, operations get, put, delete and compare-and-set.
//!
//! An operation whose outcome the client never learned (it timed out, or its client gave up)
//! is *indeterminate*: it may have taken effect at any moment after its invocation, or never.
//! It is modelled with a return time of infinity and an unconstrained output. "Never" needs
//! no special case: the search may linearize such an operation after everything else, where
//! its effect is unobservable, so the search succeeds once every *completed* operation is
//! linearized. Indeterminate reads constrain nothing and are dropped up front.
//!
//! The search is bounded by [`CheckLimits::max_steps_per_key`]; a key that exhausts it is
//! reported as inconclusive rather than as a violation.

use std::collections::HashSet;
use std::fmt;

/// A value stored under a key. The simulator writes each value at most once, so a read
/// names the write it observed.
pub type Value = u64;

/// A key of the small key space the clients use.
pub type Key = u64;

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read the key.
    Get,
    /// Set the key to a value.
    Put(Value),
    /// Remove the key (succeeds whether or not it exists).
    Delete,
    /// Set the key to `new` if it currently holds `expected`.
    Cas {
        /// The value the key must hold.
        expected: Value,
        /// The value to store.
        new: Value,
    },
}

/// What the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value read (`None`: absent).
    Get(Option<Value>),
    /// The put happened.
    Put,
    /// The delete happened; `existed` tells whether there was a key to remove.
    Delete {
        /// Whether the key existed.
        existed: bool,
    },
    /// The compare-and-set answered.
    Cas {
        /// Whether the key held the expected value (and now holds the new one).
        swapped: bool,
    },
}

/// One client operation as recorded by the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it.
    pub client: u64,
    /// The key it touched.
    pub key: Key,
    /// What was asked.
    pub input: KvInput,
    /// What was answered; `None` when the outcome is unknown (indeterminate).
    pub output: Option<KvOutput>,
    /// Virtual time of the invocation.
    pub call_us: u64,
    /// Virtual time the answer arrived; `None` when indeterminate.
    pub return_us: Option<u64>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.return_us {
            Some(t) => t.to_string(),
            None => "inf".to_string(),
        };
        write!(
            f,
            "client {} key {} {:?} -> {:?} [{}us, {}us]",
            self.client, self.key, self.input, self.output, self.call_us, end
        )
    }
}

/// Applies one operation to the model state. Returns the new state, or `None` when the
/// recorded output is impossible from `state`. An unknown output (`None`) is always possible.
pub fn model_step(
    state: Option<Value>,
    input: KvInput,
    output: Option<KvOutput>,
) -> Option<Option<Value>> {
    match (input, output) {
        (KvInput::Get, None) => Some(state),
        (KvInput::Get, Some(KvOutput::Get(read))) => (read == state).then_some(state),
        (KvInput::Put(value), None | Some(KvOutput::Put)) => Some(Some(value)),
        (KvInput::Delete, None) => Some(None),
        (KvInput::Delete, Some(KvOutput::Delete { existed })) => {
            (existed == state.is_some()).then_some(None)
        }
        (KvInput::Cas { expected, new }, output) => {
            let swapped = state == Some(expected);
            match output {
                None => Some(if swapped { Some(new) } else { state }),
                Some(KvOutput::Cas { swapped: told }) if told == swapped => {
                    Some(if swapped { Some(new) } else { state })
                }
                Some(_) => None,
            }
        }
        _ => None,
    }
}

/// Bounds on the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckLimits {
    /// Search steps (linearization attempts plus backtracks) allowed per key before the key
    /// is declared inconclusive.
    pub max_steps_per_key: u64,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_steps_per_key: 2_000_000,
        }
    }
}

/// The verdict for a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// Some key's history is not linearizable.
    Violation {
        /// The key.
        key: Key,
        /// A human explanation: the longest linearizable prefix found and the operation that
        /// could not be placed.
        detail: String,
    },
    /// No violation found, but some key exhausted the search budget.
    Inconclusive {
        /// The first key that ran out of budget.
        key: Key,
    },
}

/// The outcome of [`check_history`] with search statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Keys examined.
    pub keys: usize,
    /// Search steps taken over all keys.
    pub steps: u64,
}

/// Checks that `history` is linearizable with respect to the key-value model.
pub fn check_history(history: &[Operation], limits: CheckLimits) -> CheckReport {
    let mut keys: Vec<Key> = history.iter().map(|op| op.key).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut steps_total = 0;
    let mut inconclusive = None;
    for &key in &keys {
        let ops: Vec<&Operation> = history
            .iter()
            .filter(|op| op.key == key)
            // An unanswered read constrains nothing.
            .filter(|op| !(op.input == KvInput::Get && op.output.is_none()))
            .collect();
        let outcome = KeySearch::new(&ops).run(limits.max_steps_per_key);
        steps_total += outcome.steps;
        match outcome.result {
            SearchResult::Linearizable => {}
            SearchResult::Exhausted => {
                inconclusive.get_or_insert(key);
            }
            SearchResult::Violation(detail) => {
                return CheckReport {
                    verdict: Verdict::Violation { key, detail },
                    keys: keys.len(),
                    steps: steps_total,
                };
            }
        }
    }
    let verdict = match inconclusive {
        Some(key) => Verdict::Inconclusive { key },
        None => Verdict::Linearizable,
    };
    CheckReport {
        verdict,
        keys: keys.len(),
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

struct KeySearch<'a> {
    ops: &'a [&'a Operation],
    /// Index 0 is the head sentinel; events follow in time order.
    list: Vec<ListEntry>,
    completed_ops: usize,
}

impl<'a> KeySearch<'a> {
    fn new(ops: &'a [&'a Operation]) -> Self {
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
        KeySearch {
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

    /// Undoes [`KeySearch::lift`] (in reverse order, as dancing links require).
    fn unlift(&mut self, call: usize) {
        let partner = self.list[call].partner;
        if partner != NONE {
            self.relink(partner);
        }
        self.relink(call);
    }

    fn run(mut self, max_steps: u64) -> SearchOutcome {
        let mut state: Option<Value> = None;
        let mut linearized: Bits = vec![0; self.ops.len().div_ceil(64)];
        let mut cache: HashSet<(Bits, Option<Value>)> = HashSet::new();
        // Each frame: (call entry lifted, state before it).
        let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
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
                let next_state = model_step(state, op.input, op.output);
                let mut advanced = false;
                if let Some(next_state) = next_state {
                    let mut bits = linearized.clone();
                    bits[entry.op / 64] |= 1 << (entry.op % 64);
                    if cache.insert((bits.clone(), next_state)) {
                        linearized = bits;
                        stack.push((cursor, state));
                        state = next_state;
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
        let mut state = None;
        for &op in deepest {
            let op = self.ops[op];
            state = model_step(state, op.input, op.output).unwrap_or(state);
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

    fn op(
        client: u64,
        input: KvInput,
        output: Option<KvOutput>,
        call: u64,
        ret: Option<u64>,
    ) -> Operation {
        Operation {
            client,
            key: 0,
            input,
            output,
            call_us: call,
            return_us: ret,
        }
    }

    fn verdict(history: &[Operation]) -> Verdict {
        check_history(history, CheckLimits::default()).verdict
    }

    #[test]
    fn sequential_put_then_get_is_linearizable() {
        let h = [
            op(1, KvInput::Put(7), Some(KvOutput::Put), 0, Some(10)),
            op(2, KvInput::Get, Some(KvOutput::Get(Some(7))), 20, Some(30)),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_completed_put_is_a_violation() {
        // Goal: the classic stale read. The put finished before the read began, yet the
        // read saw the old (absent) value.
        let h = [
            op(1, KvInput::Put(7), Some(KvOutput::Put), 0, Some(10)),
            op(2, KvInput::Get, Some(KvOutput::Get(None)), 20, Some(30)),
        ];
        match verdict(&h) {
            Verdict::Violation { key, detail } => {
                assert_eq!(key, 0);
                assert!(detail.contains("cannot"), "{detail}");
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn concurrent_reads_may_see_either_value() {
        let h = [
            op(1, KvInput::Put(1), Some(KvOutput::Put), 0, Some(100)),
            op(2, KvInput::Get, Some(KvOutput::Get(Some(1))), 10, Some(20)),
            op(3, KvInput::Get, Some(KvOutput::Get(None)), 30, Some(40)),
        ];
        // Read 3 starts after read 2 returned 1, so it may not see the older state.
        assert!(matches!(verdict(&h), Verdict::Violation { .. }));
        let h = [
            op(1, KvInput::Put(1), Some(KvOutput::Put), 0, Some(100)),
            op(2, KvInput::Get, Some(KvOutput::Get(None)), 10, Some(20)),
            op(3, KvInput::Get, Some(KvOutput::Get(Some(1))), 30, Some(40)),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn indeterminate_put_may_apply_late_or_never() {
        let lost = op(1, KvInput::Put(5), None, 0, None);
        // Seen much later: allowed (applied late).
        let h = [
            lost.clone(),
            op(2, KvInput::Get, Some(KvOutput::Get(None)), 10, Some(20)),
            op(
                2,
                KvInput::Get,
                Some(KvOutput::Get(Some(5))),
                1000,
                Some(1010),
            ),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // Never seen: allowed.
        let h = [
            lost.clone(),
            op(2, KvInput::Get, Some(KvOutput::Get(None)), 1000, Some(1010)),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        // Seen, then unseen without any other write: not allowed.
        let h = [
            lost,
            op(2, KvInput::Get, Some(KvOutput::Get(Some(5))), 10, Some(20)),
            op(2, KvInput::Get, Some(KvOutput::Get(None)), 30, Some(40)),
        ];
        assert!(matches!(verdict(&h), Verdict::Violation { .. }));
    }

    #[test]
    fn cas_and_delete_outputs_are_checked() {
        let h = [
            op(1, KvInput::Put(1), Some(KvOutput::Put), 0, Some(10)),
            op(
                1,
                KvInput::Cas {
                    expected: 1,
                    new: 2,
                },
                Some(KvOutput::Cas { swapped: true }),
                20,
                Some(30),
            ),
            op(
                1,
                KvInput::Delete,
                Some(KvOutput::Delete { existed: true }),
                40,
                Some(50),
            ),
            op(
                1,
                KvInput::Cas {
                    expected: 2,
                    new: 3,
                },
                Some(KvOutput::Cas { swapped: false }),
                60,
                Some(70),
            ),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
        let h = [
            op(1, KvInput::Put(1), Some(KvOutput::Put), 0, Some(10)),
            // Both swaps from 1 cannot succeed.
            op(
                2,
                KvInput::Cas {
                    expected: 1,
                    new: 2,
                },
                Some(KvOutput::Cas { swapped: true }),
                20,
                Some(30),
            ),
            op(
                3,
                KvInput::Cas {
                    expected: 1,
                    new: 3,
                },
                Some(KvOutput::Cas { swapped: true }),
                20,
                Some(30),
            ),
        ];
        assert!(matches!(verdict(&h), Verdict::Violation { .. }));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut a = op(1, KvInput::Put(1), Some(KvOutput::Put), 0, Some(10));
        a.key = 1;
        let mut b = op(2, KvInput::Get, Some(KvOutput::Get(None)), 20, Some(30));
        b.key = 2;
        assert_eq!(verdict(&[a, b]), Verdict::Linearizable);
    }

    #[test]
    fn exhausted_budget_is_inconclusive_not_a_violation() {
        // Many concurrent indeterminate writes and a read that matches none: the search
        // must try many orders; with a budget of 3 steps it gives up.
        let mut h: Vec<Operation> = (0..8)
            .map(|i| op(i, KvInput::Put(i), None, 0, None))
            .collect();
        h.push(op(
            99,
            KvInput::Get,
            Some(KvOutput::Get(Some(1000))),
            5,
            Some(6),
        ));
        let report = check_history(
            &h,
            CheckLimits {
                max_steps_per_key: 3,
            },
        );
        assert_eq!(report.verdict, Verdict::Inconclusive { key: 0 });
        let report = check_history(&h, CheckLimits::default());
        assert!(matches!(report.verdict, Verdict::Violation { .. }));
    }
}
