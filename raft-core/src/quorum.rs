//! Quorum arithmetic for majority and joint configurations, and nothing else.
//!
//! Conventions (as in etcd's `quorum` package): an empty majority has committed everything
//! (index `u64::MAX`) and wins every vote. A plain configuration is then a joint one whose
//! outgoing half is empty, the joint committed index is the minimum of the halves, and a
//! joint vote is won only if both halves win.

use std::collections::BTreeSet;

use crate::types::{Index, NodeId};

/// Result of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused: the election cannot be won.
    Lost,
    /// Still undecided.
    Pending,
}

/// The highest index acknowledged by a majority of `voters`; `acked(id)` gives each voter's
/// acknowledged index (0 if unknown).
pub(crate) fn majority_committed(
    voters: &BTreeSet<NodeId>,
    acked: impl Fn(NodeId) -> Index,
) -> Index {
    if voters.is_empty() {
        return Index::MAX;
    }
    // Sorted descending, the majority-th value is acknowledged by a majority. Clusters are
    // small: sort on the stack when they fit.
    const STACK_VOTERS_MAX: usize = 16;
    if voters.len() <= STACK_VOTERS_MAX {
        let mut indexes = [0 as Index; STACK_VOTERS_MAX];
        for (slot, &id) in indexes.iter_mut().zip(voters) {
            *slot = acked(id);
        }
        let indexes = &mut indexes[..voters.len()];
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        return indexes[voters.len() / 2];
    }
    let mut indexes: Vec<Index> = voters.iter().map(|&id| acked(id)).collect();
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes[voters.len() / 2]
}

/// Counts votes of one majority; `vote(id)` is `Some(granted)` for voters that answered.
pub(crate) fn majority_vote(
    voters: &BTreeSet<NodeId>,
    vote: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut granted, mut missing) = (0usize, 0usize);
    for &id in voters {
        match vote(id) {
            Some(true) => granted += 1,
            None => missing += 1,
            Some(false) => {}
        }
    }
    let quorum = voters.len() / 2 + 1;
    if granted >= quorum {
        VoteResult::Won
    } else if granted + missing >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// True if a majority of `voters` satisfies `active`.
pub(crate) fn majority_active(voters: &BTreeSet<NodeId>, active: impl Fn(NodeId) -> bool) -> bool {
    majority_vote(voters, |id| Some(active(id))) == VoteResult::Won
}

/// Joint-configuration versions: both halves must agree.
pub(crate) fn joint_committed(
    incoming: &BTreeSet<NodeId>,
    outgoing: &BTreeSet<NodeId>,
    acked: impl Fn(NodeId) -> Index,
) -> Index {
    majority_committed(incoming, &acked).min(majority_committed(outgoing, &acked))
}

pub(crate) fn joint_vote(
    incoming: &BTreeSet<NodeId>,
    outgoing: &BTreeSet<NodeId>,
    vote: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    let (a, b) = (
        majority_vote(incoming, &vote),
        majority_vote(outgoing, &vote),
    );
    match (a, b) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

pub(crate) fn joint_active(
    incoming: &BTreeSet<NodeId>,
    outgoing: &BTreeSet<NodeId>,
    active: impl Fn(NodeId) -> bool,
) -> bool {
    majority_active(incoming, &active) && majority_active(outgoing, &active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    /// Naive reference: the largest index i such that more than half acked >= i.
    fn naive_committed(voters: &BTreeSet<NodeId>, acked: &[Index]) -> Index {
        if voters.is_empty() {
            return Index::MAX;
        }
        let candidates: Vec<Index> = voters.iter().map(|&id| acked[id as usize]).collect();
        let mut best = 0;
        for &i in &candidates {
            let count = candidates.iter().filter(|&&a| a >= i).count();
            if count * 2 > voters.len() {
                best = best.max(i);
            }
        }
        best
    }

    proptest! {
        #[test]
        fn committed_matches_naive(ids in proptest::collection::btree_set(0u64..7, 0..7),
                                   acked in proptest::collection::vec(0u64..20, 7)) {
            prop_assert_eq!(majority_committed(&ids, |id| acked[id as usize]), naive_committed(&ids, &acked));
        }

        #[test]
        fn vote_matches_naive(ids in proptest::collection::btree_set(0u64..7, 1..7),
                              votes in proptest::collection::vec(0u8..3, 7)) {
            let vote = |id: NodeId| match votes[id as usize] { 0 => None, 1 => Some(true), _ => Some(false) };
            let granted = ids.iter().filter(|&&id| vote(id) == Some(true)).count();
            let refused = ids.iter().filter(|&&id| vote(id) == Some(false)).count();
            let expected = if granted * 2 > ids.len() { VoteResult::Won }
                else if refused * 2 >= ids.len() { VoteResult::Lost } else { VoteResult::Pending };
            prop_assert_eq!(majority_vote(&ids, vote), expected);
        }
    }

    #[test]
    fn joint_commit_needs_both_majorities() {
        let old = set(&[1, 2, 3]);
        let new = set(&[3, 4, 5]);
        let acked = [0, 9, 9, 1, 1, 1];
        assert_eq!(majority_committed(&old, |id| acked[id as usize]), 9);
        assert_eq!(joint_committed(&new, &old, |id| acked[id as usize]), 1);
    }

    #[test]
    fn joint_vote_needs_both_majorities() {
        let old = set(&[1, 2, 3]);
        let new = set(&[3, 4, 5]);
        let votes = |id: NodeId| Some(id <= 2);
        assert_eq!(majority_vote(&old, votes), VoteResult::Won);
        assert_eq!(joint_vote(&new, &old, votes), VoteResult::Lost);
        assert_eq!(
            joint_vote(&new, &BTreeSet::new(), |id| Some(id >= 4)),
            VoteResult::Won
        );
    }
}
