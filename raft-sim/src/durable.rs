//! Holding each node to the log entries it reported durable.
//!
//! A node claims an entry durable in two ways the checker sees: its engine reports the
//! write that carried it durable (`Observation::Durable`), or it acknowledges the entry to a
//! leader (a successful append response names the last index it holds durably). Either
//! claim must survive a crash: when the node restarts, its restored log (above its
//! snapshot) must still hold every claimed entry with the same term. At run time, a node
//! that is sent an append whose predecessor is an entry it claimed, and no longer holds it,
//! has lost that entry too.
//!
//! Claims end only where the protocol removes entries: a leader's conflicting append
//! (`Persist::truncate_from`) and a snapshot install that discards the log (seen as the
//! node's snapshot moving while its log no longer holds the claim). Deliberately destroyed
//! data needs no exemption: a store whose synced bytes were damaged must refuse to open
//! (the node then halts and is never checked); one that opens must serve what it claimed.

use std::collections::{BTreeMap, VecDeque};

use raft_core::{Entry, Index, NodeId, Term};

/// What one node claimed durable.
#[derive(Debug, Default)]
struct Claims {
    /// Index -> term of every entry the node claimed durable and has not removed since.
    durable: BTreeMap<Index, Term>,
    /// Writes handed to the disk and not yet reported durable, in order, by their token's
    /// sequence number (numbered afresh in each life of the node).
    pending: VecDeque<(u64, Vec<(Index, Term)>)>,
    /// The node's snapshot index when it was last looked at.
    snapshot_index: Index,
}

/// The claims of every node; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct DurableClaims {
    nodes: BTreeMap<NodeId, Claims>,
}

impl DurableClaims {
    /// The engine handed out a write: entries from `truncate_from` on are gone from the
    /// node's log at once (a crash may find the truncation done or not, so no claim on them
    /// survives it); the appended entries are claimed once the write is reported durable.
    pub(crate) fn persist(
        &mut self,
        node: NodeId,
        truncate_from: Option<Index>,
        entries: &[Entry],
        token: u64,
    ) {
        let claims = self.nodes.entry(node).or_default();
        if let Some(from) = truncate_from {
            claims.durable.split_off(&from);
            for (_, batch) in claims.pending.iter_mut() {
                batch.retain(|(index, _)| *index < from);
            }
        }
        if !entries.is_empty() {
            let batch = entries.iter().map(|e| (e.index, e.term)).collect();
            claims.pending.push_back((token, batch));
        }
    }

    /// The engine reported write `token` and every earlier one durable.
    pub(crate) fn durable(&mut self, node: NodeId, token: u64) {
        let Some(claims) = self.nodes.get_mut(&node) else {
            return;
        };
        while claims.pending.front().is_some_and(|(t, _)| *t <= token) {
            if let Some((_, batch)) = claims.pending.pop_front() {
                claims.durable.extend(batch);
            }
        }
    }

    /// The node acknowledged holding `index` of `term` durably to a leader.
    pub(crate) fn acknowledged(&mut self, node: NodeId, index: Index, term: Term) {
        if index > 0 {
            self.nodes
                .entry(node)
                .or_default()
                .durable
                .insert(index, term);
        }
    }

    /// After the node's engine went quiet: if its snapshot moved, a snapshot install may
    /// have discarded its log, so claims above the snapshot it no longer holds are dropped.
    pub(crate) fn snapshot_seen(
        &mut self,
        node: NodeId,
        snapshot_index: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) {
        let Some(claims) = self.nodes.get_mut(&node) else {
            return;
        };
        if claims.snapshot_index == snapshot_index {
            return;
        }
        claims.snapshot_index = snapshot_index;
        // The log is a prefix: the first claim it no longer holds ends every later one.
        let lost = claims
            .durable
            .range(snapshot_index + 1..)
            .find(|(index, term)| term_at(**index) != Some(**term))
            .map(|(index, _)| *index);
        if let Some(from) = lost {
            claims.durable.split_off(&from);
        }
    }

    /// The node restarted from its store with a log whose terms `term_at` gives, above
    /// `snapshot_index`. Returns the first claim the restored state lost, as
    /// `(index, term, what the log holds there)`.
    pub(crate) fn restored(
        &mut self,
        node: NodeId,
        snapshot_index: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) -> Option<(Index, Term, Option<Term>)> {
        let claims = self.nodes.get_mut(&node)?;
        // What was still on its way to the disk is not claimed.
        claims.pending.clear();
        claims.snapshot_index = snapshot_index;
        let lost = claims
            .durable
            .range(snapshot_index + 1..)
            .map(|(index, term)| (*index, *term, term_at(*index)))
            .find(|(_, term, held)| *held != Some(*term));
        if let Some((index, _, _)) = lost {
            // Reported once: the node goes on with the log it has.
            claims.durable.split_off(&index);
        }
        lost
    }

    /// The node is sent an append after (`prev_index`, `prev_term`): true if it claimed
    /// that entry durable and its log, holding `held` there, lost it.
    pub(crate) fn lost_prev(
        &self,
        node: NodeId,
        prev_index: Index,
        prev_term: Term,
        snapshot_index: Index,
        held: Option<Term>,
    ) -> bool {
        prev_index > snapshot_index
            && held != Some(prev_term)
            && self
                .nodes
                .get(&node)
                .and_then(|c| c.durable.get(&prev_index))
                == Some(&prev_term)
    }

    /// An operator wiped the node's disk: it claims nothing any more.
    pub(crate) fn wiped(&mut self, node: NodeId) {
        self.nodes.remove(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::EntryPayload;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Noop,
        }
    }

    fn log(entries: &[(Index, Term)]) -> impl Fn(Index) -> Option<Term> + '_ {
        move |index| entries.iter().find(|(i, _)| *i == index).map(|(_, t)| *t)
    }

    #[test]
    fn a_restart_that_lost_a_durable_entry_is_reported() {
        let mut claims = DurableClaims::default();
        claims.persist(1, None, &[entry(1, 1), entry(2, 1)], 1);
        claims.durable(1, 1);
        assert_eq!(claims.restored(1, 0, log(&[(1, 1)])), Some((2, 1, None)));
        assert_eq!(claims.restored(1, 0, log(&[(1, 1)])), None);
    }

    #[test]
    fn writes_not_yet_durable_and_truncated_entries_are_not_claimed() {
        let mut claims = DurableClaims::default();
        claims.persist(1, None, &[entry(1, 1), entry(2, 1)], 1);
        claims.durable(1, 1);
        // A leader's conflicting append replaces entry 2; it is not durable yet.
        claims.persist(1, Some(2), &[entry(2, 2)], 2);
        assert_eq!(claims.restored(1, 0, log(&[(1, 1)])), None);
    }

    #[test]
    fn an_acknowledged_entry_missing_under_an_append_is_lost() {
        let mut claims = DurableClaims::default();
        claims.acknowledged(1, 3, 2);
        assert!(claims.lost_prev(1, 3, 2, 0, None));
        assert!(!claims.lost_prev(1, 3, 2, 0, Some(2)));
        assert!(!claims.lost_prev(1, 3, 2, 3, None));
        claims.snapshot_seen(1, 1, log(&[]));
        assert!(!claims.lost_prev(1, 3, 2, 0, None));
    }
}
