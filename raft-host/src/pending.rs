//! Client requests waiting for their outcome. Every request the core accepted gets exactly
//! one outcome from it; this module joins each outcome with the state machine's result and
//! turns it into exactly one [`Reply`] (or error) for the request's [`RequestId`].
//!
//! Proposals wait twice: for the core's outcome (committed at index i, or an error), then
//! for the state machine's result at i. Usually the outcome comes first (on the leader it is
//! reported in the same drain that hands i to the apply lane), but a proposal forwarded by a
//! follower may learn its index only after i was applied locally. So results of indices a
//! waiting proposal could still claim are kept until it resolves. A proposal's index is
//! above the applied index at the time it was submitted (it is appended after every
//! committed entry, and the applied index never passes the commit index), which bounds what
//! must be kept: at most the entries applied while the oldest proposal waits. Nothing else
//! bounds the maps here but the requests in flight, which the driver bounds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft_core::{
    ChangeId, Index, Membership, MembershipError, NodeId, ProposalError, ProposalId, ReadError,
    ReadId, StateMachine, TransferError, TransferId,
};

use crate::error::Error;

/// Names one client request for the life of an engine; [`crate::Engine::poll_reply`] answers
/// each exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The successful answer to a request.
pub enum Reply<M: StateMachine> {
    /// A command was applied; the state machine's response.
    Response(M::Response),
    /// An address record ([`crate::Engine::handle_set_peer`]) was applied.
    PeersUpdated,
    /// A query's answer, from a state that has applied the read's index.
    Query(M::QueryResponse),
    /// A membership change committed; the new configuration.
    Membership(Membership),
    /// A leadership transfer finished; the new leader.
    Leader(NodeId),
    /// A snapshot asked for was saved (or one at least as new already was); its index.
    Snapshot(Index),
}

impl<M: StateMachine> std::fmt::Debug for Reply<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Response(_) => f.write_str("Response(..)"),
            Reply::PeersUpdated => f.write_str("PeersUpdated"),
            Reply::Query(_) => f.write_str("Query(..)"),
            Reply::Membership(m) => write!(f, "Membership({})", m.describe()),
            Reply::Leader(id) => write!(f, "Leader({id})"),
            Reply::Snapshot(index) => write!(f, "Snapshot({index})"),
        }
    }
}

/// What applying a committed command produced, as the join sees it.
#[derive(Debug)]
pub(crate) enum EntryResult<R> {
    Response(R),
    PeersUpdated,
    /// A witness holds no payload: the write happened, its response is not here.
    Elided,
    Invalid {
        reason: String,
    },
}

/// What kind of log record a proposal carried, which decides what its result means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProposalKind {
    Command,
    Peers,
}

struct ProposalWaiter {
    request: RequestId,
    kind: ProposalKind,
    /// The applied index at submission: the proposal's index will be above it.
    floor: Index,
}

/// One answer for the driver.
pub(crate) type Answer<M> = (RequestId, Result<Reply<M>, Error>);

/// Every request waiting in the engine, and the answers not yet polled.
pub(crate) struct Pending<M: StateMachine> {
    proposals: BTreeMap<ProposalId, ProposalWaiter>,
    /// (floor, id) of proposals still waiting for their index.
    floors: BTreeSet<(Index, ProposalId)>,
    /// Committed proposals waiting for their result.
    by_index: BTreeMap<Index, (RequestId, ProposalKind)>,
    /// Results a waiting proposal may still claim.
    early: BTreeMap<Index, EntryResult<M::Response>>,
    /// Highest index the state machine reported applied.
    applied: Index,
    reads: BTreeMap<ReadId, (RequestId, M::Query)>,
    changes: BTreeMap<ChangeId, RequestId>,
    transfers: BTreeMap<TransferId, RequestId>,
    /// Snapshot requests, answered together when the snapshot being taken is saved.
    snapshots: Vec<RequestId>,
    pub(crate) answers: VecDeque<Answer<M>>,
}

impl<M: StateMachine> Pending<M> {
    pub(crate) fn new(applied: Index) -> Self {
        Pending {
            proposals: BTreeMap::new(),
            floors: BTreeSet::new(),
            by_index: BTreeMap::new(),
            early: BTreeMap::new(),
            applied,
            reads: BTreeMap::new(),
            changes: BTreeMap::new(),
            transfers: BTreeMap::new(),
            snapshots: Vec::new(),
            answers: VecDeque::new(),
        }
    }

    pub(crate) fn answer(&mut self, request: RequestId, result: Result<Reply<M>, Error>) {
        self.answers.push_back((request, result));
    }

    /// Registers a proposal just handed to the core.
    pub(crate) fn add_proposal(&mut self, id: ProposalId, request: RequestId, kind: ProposalKind) {
        let floor = self.applied;
        self.floors.insert((floor, id));
        let waiter = ProposalWaiter {
            request,
            kind,
            floor,
        };
        self.proposals.insert(id, waiter);
    }

    /// The core's outcome for a proposal; true if it failed.
    pub(crate) fn on_proposal_outcome(
        &mut self,
        id: ProposalId,
        result: Result<Index, ProposalError>,
    ) -> bool {
        let Some(waiter) = self.proposals.remove(&id) else {
            return false;
        };
        self.floors.remove(&(waiter.floor, id));
        let failed = match result {
            Ok(index) if index > self.applied => {
                self.by_index.insert(index, (waiter.request, waiter.kind));
                false
            }
            Ok(index) => match self.early.remove(&index) {
                Some(result) => {
                    let reply = reply_for(waiter.kind, index, result);
                    self.answer(waiter.request, reply);
                    false
                }
                None => {
                    self.answer(waiter.request, Err(Error::ResponseUnavailable { index }));
                    true
                }
            },
            Err(error) => {
                self.answer(waiter.request, Err(Error::from_proposal(error)));
                true
            }
        };
        self.prune_early();
        failed
    }

    /// The result of the command applied at `index`.
    pub(crate) fn on_result(&mut self, index: Index, result: EntryResult<M::Response>) {
        if let Some((request, kind)) = self.by_index.remove(&index) {
            let reply = reply_for(kind, index, result);
            self.answer(request, reply);
        } else if self.floors.first().is_some_and(|(floor, _)| index > *floor) {
            self.early.insert(index, result);
        }
    }

    /// The state machine applied through `index`.
    pub(crate) fn on_applied(&mut self, index: Index) {
        self.applied = self.applied.max(index);
    }

    /// The state machine jumped to snapshot `index`: proposals committed at or below it
    /// whose result was not produced will never get one.
    pub(crate) fn on_restored(&mut self, index: Index) {
        let later = self.by_index.split_off(&(index + 1));
        for (at, (request, _)) in std::mem::replace(&mut self.by_index, later) {
            self.answer(request, Err(Error::ResponseUnavailable { index: at }));
        }
        self.applied = self.applied.max(index);
    }

    fn prune_early(&mut self) {
        match self.floors.first() {
            None => self.early.clear(),
            Some((floor, _)) => {
                let keep = self.early.split_off(&(floor + 1));
                self.early = keep;
            }
        }
    }

    pub(crate) fn add_read(&mut self, id: ReadId, request: RequestId, query: M::Query) {
        self.reads.insert(id, (request, query));
    }

    /// The core's outcome for a read: the request and query to serve at the index, or
    /// `None` after answering a failure (or for a read that is not ours).
    pub(crate) fn on_read_outcome(
        &mut self,
        id: ReadId,
        result: Result<Index, ReadError>,
    ) -> Option<(Index, RequestId, M::Query)> {
        let (request, query) = self.reads.remove(&id)?;
        match result {
            Ok(index) => Some((index, request, query)),
            Err(error) => {
                self.answer(request, Err(Error::from_read(error)));
                None
            }
        }
    }

    pub(crate) fn add_change(&mut self, id: ChangeId, request: RequestId) {
        self.changes.insert(id, request);
    }

    pub(crate) fn on_change_outcome(
        &mut self,
        id: ChangeId,
        result: Result<Box<Membership>, MembershipError>,
    ) {
        if let Some(request) = self.changes.remove(&id) {
            let reply = result
                .map(|m| Reply::Membership(*m))
                .map_err(Error::from_membership);
            self.answer(request, reply);
        }
    }

    pub(crate) fn add_transfer(&mut self, id: TransferId, request: RequestId) {
        self.transfers.insert(id, request);
    }

    pub(crate) fn on_transfer_outcome(
        &mut self,
        id: TransferId,
        target: NodeId,
        result: Result<(), TransferError>,
    ) {
        if let Some(request) = self.transfers.remove(&id) {
            let reply = result
                .map(|()| Reply::Leader(target))
                .map_err(Error::from_transfer);
            self.answer(request, reply);
        }
    }

    pub(crate) fn add_snapshot(&mut self, request: RequestId) {
        self.snapshots.push(request);
    }

    /// The snapshot being taken was saved at `index` (or there was nothing newer than the
    /// one at `index`), or it failed: every snapshot request waiting ends.
    pub(crate) fn on_snapshot_outcome(&mut self, result: Result<Index, String>) {
        for request in std::mem::take(&mut self.snapshots) {
            let reply = match &result {
                Ok(index) => Ok(Reply::Snapshot(*index)),
                Err(reason) => Err(Error::SnapshotFailed {
                    reason: reason.clone(),
                }),
            };
            self.answer(request, reply);
        }
    }

    /// Fails every waiting request (shutdown or a fatal stop), in request order.
    pub(crate) fn fail_all(&mut self, error: &Error) {
        let mut requests: Vec<RequestId> = Vec::new();
        requests.extend(self.proposals.values().map(|w| w.request));
        requests.extend(self.by_index.values().map(|(request, _)| *request));
        requests.extend(self.reads.values().map(|(request, _)| *request));
        requests.extend(self.changes.values().copied());
        requests.extend(self.transfers.values().copied());
        requests.extend(self.snapshots.iter().copied());
        requests.sort_unstable();
        for request in requests {
            self.answer(request, Err(error.clone()));
        }
        self.proposals.clear();
        self.by_index.clear();
        self.reads.clear();
        self.changes.clear();
        self.transfers.clear();
        self.snapshots.clear();
        self.floors.clear();
        self.early.clear();
    }

    /// Requests waiting for an outcome (not counting answers not yet polled).
    pub(crate) fn waiting(&self) -> usize {
        self.proposals.len()
            + self.by_index.len()
            + self.reads.len()
            + self.changes.len()
            + self.transfers.len()
            + self.snapshots.len()
    }
}

/// What a proposal's result means for its client.
fn reply_for<M: StateMachine>(
    kind: ProposalKind,
    index: Index,
    result: EntryResult<M::Response>,
) -> Result<Reply<M>, Error> {
    match (kind, result) {
        (ProposalKind::Command, EntryResult::Response(response)) => Ok(Reply::Response(response)),
        (ProposalKind::Command, EntryResult::Elided) => Err(Error::ResponseUnavailable { index }),
        (ProposalKind::Peers, EntryResult::PeersUpdated | EntryResult::Elided) => {
            // A witness keeps no address book, but the record did apply.
            Ok(Reply::PeersUpdated)
        }
        (_, EntryResult::Invalid { reason }) => Err(Error::InvalidCommand { index, reason }),
        (ProposalKind::Command, EntryResult::PeersUpdated) => Err(Error::InvalidCommand {
            index,
            reason: "the entry decoded as an address record".into(),
        }),
        (ProposalKind::Peers, EntryResult::Response(_)) => Err(Error::InvalidCommand {
            index,
            reason: "the address record decoded as a command".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl StateMachine for Echo {
        type Command = u64;
        type Response = u64;
        type Query = ();
        type QueryResponse = ();
        type Snapshot = ();
        fn apply(&mut self, index: Index, _: u64) -> u64 {
            index
        }
        fn query(&self, _: &()) {}
        fn snapshot(&self) {}
        fn write_snapshot(_: (), _: &mut dyn std::io::Write) -> std::io::Result<()> {
            Ok(())
        }
        fn restore(&mut self, _: &mut dyn std::io::Read) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn next(pending: &mut Pending<Echo>) -> Option<(RequestId, Result<u64, Error>)> {
        let (id, answer) = pending.answers.pop_front()?;
        let value = match answer {
            Ok(Reply::Response(r)) => Ok(r),
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(e) => Err(e),
        };
        Some((id, value))
    }

    /// Goal: a leader's proposal (outcome before result) gets its result.
    #[test]
    fn outcome_then_result() {
        let mut pending = Pending::<Echo>::new(0);
        pending.add_proposal(ProposalId(1), RequestId(7), ProposalKind::Command);
        assert!(!pending.on_proposal_outcome(ProposalId(1), Ok(5)));
        assert!(next(&mut pending).is_none(), "answered before apply");
        pending.on_result(5, EntryResult::Response(50));
        assert_eq!(next(&mut pending), Some((RequestId(7), Ok(50))));
    }

    /// Goal: a forwarded proposal whose index arrives after the entry was applied still
    /// gets the state machine's response, and the kept results are then released.
    #[test]
    fn forwarded_result_before_outcome() {
        let mut pending = Pending::<Echo>::new(3);
        pending.add_proposal(ProposalId(1), RequestId(1), ProposalKind::Command);
        pending.on_result(4, EntryResult::Response(40));
        pending.on_result(6, EntryResult::Response(60));
        pending.on_applied(6);
        assert!(!pending.on_proposal_outcome(ProposalId(1), Ok(6)));
        assert_eq!(next(&mut pending), Some((RequestId(1), Ok(60))));
        assert!(
            pending.early.is_empty(),
            "results kept after the last claimant"
        );
    }

    /// Goal: errors map to the client error and restores fail covered waiters.
    #[test]
    fn failures_and_restores() {
        let mut pending = Pending::<Echo>::new(0);
        pending.add_proposal(ProposalId(1), RequestId(1), ProposalKind::Command);
        assert!(pending.on_proposal_outcome(ProposalId(1), Err(ProposalError::Dropped)));
        assert_eq!(
            next(&mut pending),
            Some((RequestId(1), Err(Error::Dropped)))
        );
        pending.add_proposal(ProposalId(2), RequestId(2), ProposalKind::Command);
        pending.on_proposal_outcome(ProposalId(2), Ok(9));
        pending.on_restored(10);
        assert_eq!(
            next(&mut pending),
            Some((RequestId(2), Err(Error::ResponseUnavailable { index: 9 })))
        );
    }

    /// Goal: transfer outcomes answer the request of their id, in whatever order they come.
    #[test]
    fn transfer_matching() {
        let mut pending = Pending::<Echo>::new(0);
        pending.add_transfer(TransferId(7), RequestId(1));
        pending.add_transfer(TransferId(8), RequestId(2));
        pending.on_transfer_outcome(TransferId(8), 2, Err(TransferError::InProgress));
        pending.on_transfer_outcome(TransferId(7), 3, Ok(()));
        let answers: Vec<_> = pending.answers.drain(..).collect();
        assert!(matches!(
            answers[0],
            (
                RequestId(2),
                Err(Error::Transfer(TransferError::InProgress))
            )
        ));
        assert!(matches!(answers[1], (RequestId(1), Ok(Reply::Leader(3)))));
    }
}
