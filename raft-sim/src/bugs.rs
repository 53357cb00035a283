//! Deliberately broken variants, to show the checkers are not vacuous.
//!
//! raft-core is not changed: protocol bugs are sabotage on the wire with the same effect
//! as the protocol bug they stand for. Host bugs are planted in the production code they
//! belong to, the host engine (`raft_host::PlantedBug`) and the file store's recovery
//! (`raft_storage_file::PlantedBug`), behind their `planted-bugs` features (only this crate
//! enables them) and switched on per node at run time; the simulator's driver is never
//! sabotaged. `raft-sim run --bug <name>` turns one on; `tests/simulation.rs` requires each
//! to be caught within a few seeds.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use raft_core::{Index, Message, MessageBody, NodeId, Term};

/// A broken variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The host reports writes durable as soon as they are issued (before the sync), so a
    /// crash loses votes and log entries the node already promised.
    AckBeforeDurable,
    /// Vote requests are rewritten to claim a last log term equal to the campaign term, so
    /// voters grant votes without the "at least as up to date" check.
    VoteWithoutLogCheck,
    /// Followers are told to commit whatever a majority of them hold, whatever its term
    /// (the leader's commit index in appends and heartbeats is rewritten), i.e. entries of
    /// previous terms are committed by counting replicas (Raft paper figure 8).
    CommitPreviousTerm,
    /// Followers are told to commit everything the leader holds, before any quorum has
    /// acknowledged it (the commit rule without the majority).
    CommitWithoutQuorum,
    /// Reads are answered from the local state machine at once, without ReadIndex or lease.
    StaleReads,
    /// Restore ignores checksum failures of durable records (drops them like a torn tail),
    /// so a node serves and votes with a log that lost acknowledged entries.
    SkipCorruptionCheck,
    /// Clients send retries without a session, so a retried write may apply twice.
    NoSessions,
    /// Lease reads under clock drift and jumps beyond the configured bound.
    LeaseBeyondBound,
    /// The disk lane reports a write durable before its sync (the sync runs with the next
    /// write).
    DurableBeforeSync,
    /// The disk lane skips the sync of a lone small write that needs one.
    SkipSync,
    /// Entries are applied as soon as they are appended, before they commit.
    ApplyBeforeCommit,
    /// Reads are answered before the entries up to their read index are applied.
    ReplyBeforeApply,
    /// File-store recovery drops a last segment with a torn tail whole, synced records
    /// too, without reporting it.
    LoseUnsyncedSegment,
}

/// Every variant, for sweeps and tests.
pub const ALL_BUGS: [Bug; 13] = [
    Bug::AckBeforeDurable,
    Bug::VoteWithoutLogCheck,
    Bug::CommitPreviousTerm,
    Bug::CommitWithoutQuorum,
    Bug::StaleReads,
    Bug::SkipCorruptionCheck,
    Bug::NoSessions,
    Bug::LeaseBeyondBound,
    Bug::DurableBeforeSync,
    Bug::SkipSync,
    Bug::ApplyBeforeCommit,
    Bug::ReplyBeforeApply,
    Bug::LoseUnsyncedSegment,
];

impl Bug {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeDurable => "ack-before-durable",
            Bug::VoteWithoutLogCheck => "vote-without-log-check",
            Bug::CommitPreviousTerm => "commit-previous-term",
            Bug::CommitWithoutQuorum => "commit-without-quorum",
            Bug::StaleReads => "stale-reads",
            Bug::SkipCorruptionCheck => "skip-corruption-check",
            Bug::NoSessions => "no-sessions",
            Bug::LeaseBeyondBound => "lease-beyond-bound",
            Bug::DurableBeforeSync => "durable-before-sync",
            Bug::SkipSync => "skip-sync",
            Bug::ApplyBeforeCommit => "apply-before-commit",
            Bug::ReplyBeforeApply => "reply-before-apply",
            Bug::LoseUnsyncedSegment => "lose-unsynced-segment",
        }
    }

    /// The bug planted in the host engine, if it is one.
    pub fn engine_bug(self) -> Option<raft_host::PlantedBug> {
        use raft_host::PlantedBug as P;
        Some(match self {
            Bug::AckBeforeDurable => P::AckBeforeDurable,
            Bug::StaleReads => P::StaleReads,
            Bug::DurableBeforeSync => P::DurableBeforeSync,
            Bug::SkipSync => P::SkipSync,
            Bug::ApplyBeforeCommit => P::ApplyBeforeCommit,
            Bug::ReplyBeforeApply => P::ReplyBeforeApply,
            _ => return None,
        })
    }

    /// The bug planted in the file store, if it is one.
    pub fn storage_bug(self) -> Option<raft_storage_file::PlantedBug> {
        use raft_storage_file::PlantedBug as P;
        match self {
            Bug::SkipCorruptionCheck => Some(P::SkipCorruptionCheck),
            Bug::LoseUnsyncedSegment => Some(P::LoseUnsyncedSegment),
            _ => None,
        }
    }

    /// True if the bug lives in the file store, so only a run on it can show it.
    pub fn needs_file_storage(self) -> bool {
        self.storage_bug().is_some()
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_BUGS
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL_BUGS.iter().map(|b| b.name()).collect();
                format!("unknown bug `{s}`; known: {}", names.join(", "))
            })
    }
}

/// Message-level sabotage, applied to every message a node sends.
#[derive(Debug, Default)]
pub struct Mutator {
    /// For `commit-previous-term`: per (leader, term), the highest index each peer
    /// acknowledged.
    acked: BTreeMap<(NodeId, Term), BTreeMap<NodeId, Index>>,
}

impl Mutator {
    /// Notes an acknowledgement delivered to a leader.
    pub fn observe_delivery(&mut self, bug: Option<Bug>, message: &Message) {
        if bug != Some(Bug::CommitPreviousTerm) {
            return;
        }
        if let MessageBody::AppendResponse {
            success: true,
            match_index,
            ..
        } = message.body
        {
            let peers = self.acked.entry((message.to, message.term)).or_default();
            let slot = peers.entry(message.from).or_default();
            *slot = (*slot).max(match_index);
        }
    }

    /// Rewrites an outgoing message. `leader_last` and `voters` describe the sender when
    /// it leads (its last index and its voters).
    pub fn mutate(
        &mut self,
        bug: Option<Bug>,
        message: &mut Message,
        leader_last: Index,
        voters: &[NodeId],
    ) {
        match (bug, &mut message.body) {
            (Some(Bug::VoteWithoutLogCheck), MessageBody::VoteRequest { last_log_term, .. }) => {
                *last_log_term = message.term
            }
            (Some(Bug::CommitPreviousTerm), MessageBody::Append { leader_commit, .. }) => {
                let counted = self.majority_acked(message.from, message.term, leader_last, voters);
                *leader_commit = (*leader_commit).max(counted);
            }
            (Some(Bug::CommitPreviousTerm), MessageBody::Heartbeat { commit, .. }) => {
                let counted = self.majority_acked(message.from, message.term, leader_last, voters);
                let peer_match = self
                    .acked
                    .get(&(message.from, message.term))
                    .and_then(|peers| peers.get(&message.to))
                    .copied()
                    .unwrap_or(0);
                *commit = (*commit).max(counted.min(peer_match));
            }
            (Some(Bug::CommitWithoutQuorum), MessageBody::Append { leader_commit, .. }) => {
                *leader_commit = (*leader_commit).max(leader_last);
            }
            _ => {}
        }
    }

    /// The highest index held by a majority of `voters`, counting the leader itself at
    /// `leader_last` and ignoring terms: the broken commit rule.
    fn majority_acked(
        &self,
        leader: NodeId,
        term: Term,
        leader_last: Index,
        voters: &[NodeId],
    ) -> Index {
        if voters.is_empty() {
            return 0;
        }
        let peers = self.acked.get(&(leader, term));
        let mut held: Vec<Index> = voters
            .iter()
            .map(|v| {
                if *v == leader {
                    leader_last
                } else {
                    peers.and_then(|p| p.get(v)).copied().unwrap_or(0)
                }
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held[voters.len() / 2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for bug in ALL_BUGS {
            assert_eq!(bug.name().parse::<Bug>(), Ok(bug));
        }
        assert!(
            "nonsense"
                .parse::<Bug>()
                .unwrap_err()
                .contains("ack-before-durable")
        );
    }

    #[test]
    fn vote_requests_claim_an_up_to_date_log() {
        let mut m = Mutator::default();
        let mut message = Message {
            from: 1,
            to: 2,
            term: 9,
            body: MessageBody::VoteRequest {
                pre_vote: false,
                last_log_index: 3,
                last_log_term: 1,
                transfer: false,
            },
        };
        let original = message.clone();
        m.mutate(None, &mut message, 0, &[]);
        assert_eq!(message, original, "no bug, no change");
        m.mutate(Some(Bug::VoteWithoutLogCheck), &mut message, 0, &[]);
        assert!(matches!(
            message.body,
            MessageBody::VoteRequest {
                last_log_term: 9,
                ..
            }
        ));
    }

    #[test]
    fn commit_is_raised_to_the_majority_acknowledged_index() {
        let mut m = Mutator::default();
        let ack = |from, index| Message {
            from,
            to: 1,
            term: 4,
            body: MessageBody::AppendResponse {
                success: true,
                match_index: index,
                hint: None,
            },
        };
        m.observe_delivery(Some(Bug::CommitPreviousTerm), &ack(2, 7));
        m.observe_delivery(Some(Bug::CommitPreviousTerm), &ack(3, 5));
        let mut append = Message {
            from: 1,
            to: 2,
            term: 4,
            body: MessageBody::Append {
                prev_log_index: 7,
                prev_log_term: 3,
                entries: Vec::new(),
                leader_commit: 2,
            },
        };
        m.mutate(Some(Bug::CommitPreviousTerm), &mut append, 9, &[1, 2, 3]);
        assert!(matches!(
            append.body,
            MessageBody::Append {
                leader_commit: 7,
                ..
            }
        ));
    }
}
