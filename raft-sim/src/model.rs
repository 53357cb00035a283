//! The sequential specification a client history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential model of the system under test: what one operation does to the state when
/// operations happen one at a time. The linearizability checker
/// ([`crate::linearizability`]) searches for an order of the recorded operations, within
/// their real-time bounds, that this model accepts.
///
/// An operation whose outcome the client never learned has `output == None`: the model
/// must accept it from any state (returning the state it would lead to).
///
/// ```
/// use raft_sim::Model;
///
/// /// A counter: `Some(n)` adds n and answers the new total; `None` reads it.
/// struct Counter;
///
/// impl Model for Counter {
///     type State = u64;
///     type Input = Option<u64>;
///     type Output = u64;
///
///     fn init(&self) -> u64 {
///         0
///     }
///
///     fn step(&self, state: &u64, input: &Option<u64>, output: Option<&u64>) -> Option<u64> {
///         let next = state + input.unwrap_or(0);
///         output.is_none_or(|told| *told == next).then_some(next)
///     }
///
///     fn is_read(&self, input: &Option<u64>) -> bool {
///         input.is_none()
///     }
/// }
/// assert_eq!(Counter.step(&1, &Some(2), Some(&3)), Some(3));
/// assert_eq!(Counter.step(&1, &Some(2), Some(&2)), None);
/// ```
pub trait Model {
    /// The state of the sequential object (memoized by the search, hence `Hash + Eq`).
    type State: Clone + Eq + Hash + Debug;
    /// What a client asked for.
    type Input: Debug;
    /// What a client was told.
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` is applied to `state` and answered with `output`, or `None`
    /// when `output` is impossible from `state`. An unknown output (`None`) must be
    /// accepted.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// The partition an operation belongs to. Operations of different partitions never
    /// affect each other (as keys of a key-value store), so each partition is checked on
    /// its own, which keeps the search small. The default puts everything in one.
    fn partition(&self, input: &Self::Input) -> u64 {
        let _ = input;
        0
    }

    /// True when the operation never changes the state (a read). An unanswered read
    /// constrains nothing, so the checker drops it. The default, `false`, is always
    /// correct, only slower.
    fn is_read(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }
}
