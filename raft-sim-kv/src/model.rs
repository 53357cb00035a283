//! The sequential model of the key-value store the history is checked against: a register
//! per key (state `Option<Value>`) with get, put, delete and compare-and-set. Keys are the
//! checker's partitions, so each key is searched on its own.

use std::fmt;

use raft_sim::Model;

/// A value stored under a key. The clients write each value at most once, so a read names
/// the write it observed.
pub type Value = u64;

/// A key of the small key space the clients use.
pub type Key = u64;

/// What a client asked for, on one key.
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

/// One operation: a key and what was asked of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KvOp {
    /// The key.
    pub key: Key,
    /// What was asked.
    pub input: KvInput,
}

impl fmt::Debug for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {} {:?}", self.key, self.input)
    }
}

/// A recorded key-value operation.
pub type KvOperation = raft_sim::Operation<KvOp, KvOutput>;

/// Applies one operation to a key's state. Returns the new state, or `None` when the
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

/// The key-value model: a register per key, keys checked independently.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = Option<Value>;
    type Input = KvOp;
    type Output = KvOutput;

    fn init(&self) -> Option<Value> {
        None
    }

    fn step(
        &self,
        state: &Option<Value>,
        op: &KvOp,
        output: Option<&KvOutput>,
    ) -> Option<Option<Value>> {
        model_step(*state, op.input, output.copied())
    }

    fn partition(&self, op: &KvOp) -> u64 {
        op.key
    }

    fn is_read(&self, op: &KvOp) -> bool {
        op.input == KvInput::Get
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use raft_sim::linearizability::{CheckLimits, Verdict, check_history};

    fn op(
        client: u64,
        input: KvInput,
        output: Option<KvOutput>,
        call: u64,
        ret: Option<u64>,
    ) -> KvOperation {
        KvOperation {
            client,
            input: KvOp { key: 0, input },
            output,
            call_us: call,
            return_us: ret,
        }
    }

    fn verdict(history: &[KvOperation]) -> Verdict {
        check_history(&KvModel, history, CheckLimits::default()).verdict
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
            Verdict::Violation { partition, detail } => {
                assert_eq!(partition, 0);
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
        a.input.key = 1;
        let mut b = op(2, KvInput::Get, Some(KvOutput::Get(None)), 20, Some(30));
        b.input.key = 2;
        assert_eq!(verdict(&[a, b]), Verdict::Linearizable);
    }

    #[test]
    fn exhausted_budget_is_inconclusive_not_a_violation() {
        // Many concurrent indeterminate writes and a read that matches none: the search
        // must try many orders; with a budget of 3 steps it gives up.
        let mut h: Vec<KvOperation> = (0..8)
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
            &KvModel,
            &h,
            CheckLimits {
                max_steps_per_partition: 3,
            },
        );
        assert_eq!(report.verdict, Verdict::Inconclusive { partition: 0 });
        let report = check_history(&KvModel, &h, CheckLimits::default());
        assert!(matches!(report.verdict, Verdict::Violation { .. }));
    }
}
