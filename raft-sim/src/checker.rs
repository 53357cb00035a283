//! Protocol-level safety checks, fed with observations after every simulated event.
//!
//! * Election safety: at most one leader per term.
//! * Log matching: two entries with the same index and term carry the same payload and are
//!   preceded by entries of the same term (checked by induction on every append).
//! * Commit safety: once any node commits an entry at an index, every node that commits that
//!   index commits the same entry; a node's commit index never goes back within a life.
//! * Leader completeness: a new leader's log holds every entry committed so far.
//! * State machine safety: no two nodes apply different entries at one index.
//! * Durable promises: a node never grants two votes in one term, even across restarts, and
//!   comes back from a restart with a term at least as high as any term it promised in.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use raft_core::{Entry, EntryPayload, Index, NodeId, Term};

/// The kind of a safety violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// Two leaders in one term.
    TwoLeaders,
    /// Same index and term, different entries or different predecessors.
    LogMatching,
    /// Different entries committed at one index, or a committed entry lost.
    CommitSafety,
    /// A node's commit index went back.
    CommitRegressed,
    /// A new leader lacks a committed entry.
    LeaderCompleteness,
    /// Two nodes applied different entries at one index.
    StateMachineSafety,
    /// A node voted twice in one term.
    DoubleVote,
    /// A node forgot a term it had promised in.
    TermRegressed,
    /// A node lost a log entry it had reported durable or acknowledged to a leader.
    DurabilityLost,
    /// A client-level check failed (linearizability, lost write, double apply).
    Client,
    /// The cluster did not recover in time after healing.
    Liveness,
    /// A node stopped on its own (corruption it was not told about).
    UnexpectedHalt,
    /// An invariant of the workload's own failed ([`crate::Invariant`]).
    Invariant,
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ViolationKind::TwoLeaders => "two-leaders",
            ViolationKind::LogMatching => "log-matching",
            ViolationKind::CommitSafety => "commit-safety",
            ViolationKind::CommitRegressed => "commit-regressed",
            ViolationKind::LeaderCompleteness => "leader-completeness",
            ViolationKind::StateMachineSafety => "state-machine-safety",
            ViolationKind::DoubleVote => "double-vote",
            ViolationKind::TermRegressed => "term-regressed",
            ViolationKind::DurabilityLost => "durability-lost",
            ViolationKind::Client => "client",
            ViolationKind::Liveness => "liveness",
            ViolationKind::UnexpectedHalt => "unexpected-halt",
            ViolationKind::Invariant => "invariant",
        };
        f.write_str(name)
    }
}

/// One violated property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time it was found.
    pub at_us: u64,
    /// Which property.
    pub kind: ViolationKind,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}us] {}: {}", self.at_us, self.kind, self.detail)
    }
}

/// A payload summary that can be compared cheaply. A witness holds `Elided` in place of a
/// command, which matches any command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    /// A leader's no-op.
    Noop,
    /// A command, by digest of its bytes.
    Command(u64),
    /// A membership entry, by digest of its description.
    Membership(u64),
    /// A command withheld from a witness.
    Elided,
}

impl Fingerprint {
    /// The fingerprint of an entry's payload.
    pub fn of(payload: &EntryPayload) -> Self {
        match payload {
            EntryPayload::Noop => Fingerprint::Noop,
            EntryPayload::Command(bytes) => Fingerprint::Command(fnv1a(bytes)),
            EntryPayload::Membership(m) => Fingerprint::Membership(fnv1a(m.describe().as_bytes())),
            EntryPayload::Elided => Fingerprint::Elided,
        }
    }

    fn matches(self, other: Fingerprint) -> bool {
        match (self, other) {
            (Fingerprint::Elided, Fingerprint::Command(_) | Fingerprint::Elided)
            | (Fingerprint::Command(_), Fingerprint::Elided) => true,
            (a, b) => a == b,
        }
    }

    /// Prefers the informative one of two matching fingerprints.
    fn merge(self, other: Fingerprint) -> Fingerprint {
        if self == Fingerprint::Elided {
            other
        } else {
            self
        }
    }
}

/// FNV-1a, 64 bits: a stable digest that does not depend on the process or platform.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What an entry at (index, term) was first seen to be.
#[derive(Clone, Copy, Debug)]
struct Seen {
    payload: Fingerprint,
    prev_term: Option<Term>,
}

/// The safety checker.
#[derive(Debug, Default)]
pub struct SafetyChecker {
    leaders: BTreeMap<Term, NodeId>,
    /// Lookup only (never iterated), so hash order cannot leak into results.
    seen: HashMap<(Index, Term), Seen>,
    /// Index -> (term, payload) of every committed entry, from index 1.
    committed: Vec<(Term, Fingerprint)>,
    /// Index -> the lowest term in which a node was seen to hold it committed. Only
    /// leaders of later terms must hold it (a stale leader of an older term need not).
    committed_in: Vec<Term>,
    /// Index -> (term, payload) of every applied entry, from index 1.
    applied: Vec<Option<(Term, Fingerprint)>>,
    votes: BTreeMap<(NodeId, Term), NodeId>,
    commit_seen: BTreeMap<NodeId, Index>,
    promised_term: BTreeMap<NodeId, Term>,
    /// Log entries each node claimed durable.
    pub(crate) durable: crate::durable::DurableClaims,
    violations: Vec<Violation>,
}

impl SafetyChecker {
    /// Violations found so far, in order.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Records a violation found elsewhere (client level, liveness).
    pub fn report(&mut self, at_us: u64, kind: ViolationKind, detail: String) {
        self.violations.push(Violation {
            at_us,
            kind,
            detail,
        });
    }

    /// The highest index known committed anywhere.
    pub fn max_committed(&self) -> Index {
        self.committed.len() as Index
    }

    /// The committed entry at `index`, if known.
    pub fn committed_at(&self, index: Index) -> Option<(Term, Fingerprint)> {
        let slot = usize::try_from(index).ok()?.checked_sub(1)?;
        self.committed.get(slot).copied()
    }

    /// A node is (or became) leader of `term`.
    pub fn observe_leader(&mut self, at_us: u64, node: NodeId, term: Term) {
        let leader = *self.leaders.entry(term).or_insert(node);
        if leader != node {
            self.report(
                at_us,
                ViolationKind::TwoLeaders,
                format!("n{leader} and n{node} both lead term {term}"),
            );
        }
    }

    /// A node appended `entries` after an entry of term `prev_term` (`None`: unknown,
    /// e.g. covered by its snapshot).
    pub fn observe_append(
        &mut self,
        at_us: u64,
        node: NodeId,
        prev_term: Option<Term>,
        entries: &[Entry],
    ) {
        let mut prev = prev_term;
        for entry in entries {
            let payload = Fingerprint::of(&entry.payload);
            match self.seen.get_mut(&(entry.index, entry.term)) {
                None => {
                    self.seen.insert(
                        (entry.index, entry.term),
                        Seen {
                            payload,
                            prev_term: prev,
                        },
                    );
                }
                Some(first) => {
                    let same_prev = match (first.prev_term, prev) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    };
                    if !first.payload.matches(payload) || !same_prev {
                        let detail = format!(
                            "n{node} holds entry {}@t{} = {:?} after t{:?}, first seen as {:?} after t{:?}",
                            entry.index, entry.term, payload, prev, first.payload, first.prev_term
                        );
                        self.report(at_us, ViolationKind::LogMatching, detail);
                    } else {
                        first.payload = first.payload.merge(payload);
                        first.prev_term = first.prev_term.or(prev);
                    }
                }
            }
            prev = Some(entry.term);
        }
    }

    /// A node's commit index moved from its last observed value to `commit`; `entry_at`
    /// gives its log's (term, payload) at an index (`None` inside its snapshot).
    pub fn observe_commit(
        &mut self,
        at_us: u64,
        node: NodeId,
        node_term: Term,
        commit: Index,
        entry_at: impl Fn(Index) -> Option<(Term, Fingerprint)>,
    ) {
        let previous = self.commit_seen.get(&node).copied().unwrap_or(0);
        if commit < previous {
            self.report(
                at_us,
                ViolationKind::CommitRegressed,
                format!("n{node} commit index went from {previous} back to {commit}"),
            );
            return;
        }
        self.commit_seen.insert(node, commit);
        for index in previous + 1..=commit {
            let Some((term, payload)) = entry_at(index) else {
                continue;
            };
            let slot = (index - 1) as usize;
            if let Some(&(known_term, known_payload)) = self.committed.get(slot) {
                if known_term != term || !known_payload.matches(payload) {
                    self.report(
                        at_us,
                        ViolationKind::CommitSafety,
                        format!(
                            "n{node} committed {index}@t{term} {payload:?}, but {index}@t{known_term} \
                             {known_payload:?} was committed before"
                        ),
                    );
                } else {
                    self.committed[slot].1 = known_payload.merge(payload);
                    self.committed_in[slot] = self.committed_in[slot].min(node_term);
                }
            } else if slot == self.committed.len() {
                self.committed.push((term, payload));
                self.committed_in.push(node_term);
            }
            // A gap (slot beyond the end) cannot happen: a node commits a prefix, and the
            // first commit of any index extends the registry in order.
        }
    }

    /// A node restarted or lost its memory: its commit tracking starts again from the
    /// commit index it restored.
    pub fn observe_restart(&mut self, at_us: u64, node: NodeId, commit: Index, term: Term) {
        self.commit_seen.insert(node, commit);
        let promised = self.promised_term.get(&node).copied().unwrap_or(0);
        if term < promised {
            self.report(
                at_us,
                ViolationKind::TermRegressed,
                format!("n{node} restarted in term {term} after promising in term {promised}"),
            );
        }
    }

    /// A node became leader of `term`: its log must contain every entry committed in an
    /// earlier term. `first_index` is its first log index (entries below are in its
    /// snapshot).
    pub fn observe_new_leader(
        &mut self,
        at_us: u64,
        node: NodeId,
        term: Term,
        last_index: Index,
        first_index: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) {
        // Committed in an earlier term: a prefix in practice, but do not rely on it.
        let max = self
            .committed_in
            .iter()
            .rposition(|committed_in| *committed_in < term)
            .map_or(0, |slot| slot as Index + 1);
        if last_index < max {
            self.report(
                at_us,
                ViolationKind::LeaderCompleteness,
                format!("new leader n{node} has last index {last_index} < committed {max}"),
            );
            return;
        }
        for index in first_index.max(1)..=max {
            if self.committed_in[(index - 1) as usize] >= term {
                continue;
            }
            let (expected, _) = self.committed[(index - 1) as usize];
            let actual = term_at(index);
            if actual != Some(expected) {
                self.report(
                    at_us,
                    ViolationKind::LeaderCompleteness,
                    format!("new leader n{node} has t{actual:?} at committed index {index} (t{expected})"),
                );
                return;
            }
        }
    }

    /// A node applied an entry.
    pub fn observe_apply(
        &mut self,
        at_us: u64,
        node: NodeId,
        index: Index,
        term: Term,
        payload: Fingerprint,
    ) {
        let slot = (index as usize).saturating_sub(1);
        if self.applied.len() <= slot {
            self.applied.resize(slot + 1, None);
        }
        match self.applied[slot] {
            None => self.applied[slot] = Some((term, payload)),
            Some((known_term, known)) => {
                if known_term != term || !known.matches(payload) {
                    self.report(
                        at_us,
                        ViolationKind::StateMachineSafety,
                        format!(
                            "n{node} applied {index}@t{term} {payload:?}, another node applied \
                             {index}@t{known_term} {known:?}"
                        ),
                    );
                } else {
                    self.applied[slot] = Some((term, known.merge(payload)));
                }
            }
        }
    }

    /// A node granted its (real, not pre-) vote in `term` to `candidate`.
    pub fn observe_vote(&mut self, at_us: u64, node: NodeId, term: Term, candidate: NodeId) {
        self.promise(node, term);
        let first = *self.votes.entry((node, term)).or_insert(candidate);
        if first != candidate {
            self.report(
                at_us,
                ViolationKind::DoubleVote,
                format!("n{node} voted for n{first} and n{candidate} in term {term}"),
            );
        }
    }

    /// An operator wiped a node's data (it rejoins as a new, empty node): its earlier
    /// promises (term, votes) no longer bind it.
    pub fn observe_wipe(&mut self, node: NodeId) {
        self.promised_term.remove(&node);
        self.votes.retain(|(voter, _), _| *voter != node);
        self.commit_seen.remove(&node);
        self.durable.wiped(node);
    }

    /// A node made a promise that requires `term` to be durable (a vote request, a vote,
    /// a successful append response).
    pub fn promise(&mut self, node: NodeId, term: Term) {
        let entry = self.promised_term.entry(node).or_insert(0);
        *entry = (*entry).max(term);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cmd(index: Index, term: Term, data: &'static [u8]) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Command(Bytes::from_static(data)),
        }
    }

    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let mut c = SafetyChecker::default();
        c.observe_leader(0, 1, 3);
        c.observe_leader(1, 1, 3);
        assert!(c.violations().is_empty());
        c.observe_leader(2, 2, 3);
        assert_eq!(c.violations()[0].kind, ViolationKind::TwoLeaders);
    }

    #[test]
    fn log_matching_catches_same_index_term_with_other_payload_or_prefix() {
        let mut c = SafetyChecker::default();
        c.observe_append(0, 1, Some(0), &[cmd(1, 1, b"a"), cmd(2, 1, b"b")]);
        c.observe_append(0, 2, Some(0), &[cmd(1, 1, b"a")]);
        assert!(c.violations().is_empty());
        // A witness holds an elided copy: fine.
        c.observe_append(
            0,
            3,
            Some(1),
            &[Entry {
                term: 1,
                index: 2,
                payload: EntryPayload::Elided,
            }],
        );
        assert!(c.violations().is_empty());
        c.observe_append(1, 2, Some(1), &[cmd(2, 1, b"X")]);
        assert_eq!(c.violations()[0].kind, ViolationKind::LogMatching);
        let mut c = SafetyChecker::default();
        c.observe_append(0, 1, Some(1), &[cmd(5, 2, b"a")]);
        c.observe_append(0, 2, Some(2), &[cmd(5, 2, b"a")]);
        assert_eq!(
            c.violations()[0].kind,
            ViolationKind::LogMatching,
            "different predecessors"
        );
    }

    #[test]
    fn commit_and_apply_safety_and_leader_completeness() {
        let mut c = SafetyChecker::default();
        let fp = |d: &[u8]| Fingerprint::Command(fnv1a(d));
        c.observe_commit(0, 1, 1, 2, |i| {
            Some((1, fp(if i == 1 { b"a" } else { b"b" })))
        });
        assert_eq!(c.max_committed(), 2);
        c.observe_commit(1, 2, 1, 1, |_| Some((1, fp(b"a"))));
        assert!(c.violations().is_empty());
        c.observe_commit(2, 3, 2, 2, |i| {
            Some(if i == 1 { (1, fp(b"a")) } else { (2, fp(b"z")) })
        });
        assert_eq!(c.violations()[0].kind, ViolationKind::CommitSafety);
        c.observe_commit(3, 1, 2, 1, |_| None);
        assert_eq!(c.violations()[1].kind, ViolationKind::CommitRegressed);
        c.observe_new_leader(4, 2, 3, 1, 1, |_| Some(1));
        assert_eq!(c.violations()[2].kind, ViolationKind::LeaderCompleteness);
        c.observe_new_leader(5, 2, 3, 2, 1, |_| Some(1));
        assert_eq!(c.violations().len(), 3, "a complete leader is fine");
        c.observe_new_leader(5, 4, 1, 0, 1, |_| None);
        assert_eq!(
            c.violations().len(),
            3,
            "a stale leader of an older term need not be complete"
        );
        c.observe_apply(6, 1, 1, 1, fp(b"a"));
        c.observe_apply(6, 2, 1, 1, Fingerprint::Elided);
        assert_eq!(c.violations().len(), 3);
        c.observe_apply(7, 3, 1, 1, fp(b"q"));
        assert_eq!(c.violations()[3].kind, ViolationKind::StateMachineSafety);
    }

    #[test]
    fn double_votes_and_forgotten_terms_are_caught_across_restarts() {
        let mut c = SafetyChecker::default();
        c.observe_vote(0, 1, 4, 2);
        c.observe_vote(1, 1, 4, 2);
        assert!(c.violations().is_empty());
        c.observe_restart(2, 1, 0, 4);
        assert!(c.violations().is_empty());
        c.observe_restart(3, 1, 0, 3);
        assert_eq!(c.violations()[0].kind, ViolationKind::TermRegressed);
        c.observe_vote(4, 1, 4, 3);
        assert_eq!(c.violations()[1].kind, ViolationKind::DoubleVote);
    }
}
