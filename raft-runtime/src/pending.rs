//! Client requests waiting in the driver for their outcome. Every request the core
//! accepted gets exactly one outcome from it; this module turns each outcome into exactly
//! one answer on the caller's channel.
//!
//! Proposals wait twice: for the core's outcome (committed at index i, or an error), then
//! for the apply lane's result at i. Usually the outcome comes first (on the leader it is
//! reported in the same drain that hands i to the apply lane), but a proposal forwarded by a
//! follower may learn its index only after i was applied locally. So results of indices a
//! waiting proposal could still claim are kept until it resolves. A proposal's index is
//! above the applied index at the time it was submitted (it is appended after every
//! committed entry, and the applied index never passes the commit index), which bounds what
//! must be kept: at most the entries applied while the oldest proposal waits.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use raft_core::{
    ChangeId, Index, Membership, MembershipError, NodeId, ProposalError, ProposalId, ReadError,
    ReadId, StateMachine, TransferError,
};
use tokio::sync::oneshot;

use crate::apply::QueryReply;
use crate::error::Error;
use crate::event::EntryOutcome;

/// The answer channel of a proposal.
pub(crate) type ProposalReply<R> = oneshot::Sender<Result<EntryOutcome<R>, Error>>;
/// The answer channel of a membership change.
pub(crate) type ChangeReply = oneshot::Sender<Result<Membership, Error>>;
/// The answer channel of a leadership transfer.
pub(crate) type TransferReply = oneshot::Sender<Result<NodeId, Error>>;

struct ProposalWaiter<R> {
    reply: ProposalReply<R>,
    /// The applied index at submission: the proposal's index will be above it.
    floor: Index,
}

/// Every request waiting in the driver.
pub(crate) struct Pending<M: StateMachine> {
    proposals: HashMap<ProposalId, ProposalWaiter<M::Response>>,
    /// (floor, id) of proposals still waiting for their index.
    floors: BTreeSet<(Index, ProposalId)>,
    /// Committed proposals waiting for their result.
    by_index: BTreeMap<Index, ProposalReply<M::Response>>,
    /// Results a waiting proposal may still claim.
    early: BTreeMap<Index, EntryOutcome<M::Response>>,
    /// Highest index the apply lane reported.
    applied: Index,
    reads: HashMap<ReadId, (M::Query, QueryReply<M>)>,
    changes: HashMap<ChangeId, ChangeReply>,
    /// Transfers in progress, oldest first.
    transfers: VecDeque<TransferReply>,
}

impl<M: StateMachine> Pending<M> {
    pub(crate) fn new(applied: Index) -> Self {
        Pending {
            proposals: HashMap::new(),
            floors: BTreeSet::new(),
            by_index: BTreeMap::new(),
            early: BTreeMap::new(),
            applied,
            reads: HashMap::new(),
            changes: HashMap::new(),
            transfers: VecDeque::new(),
        }
    }

    /// Registers a proposal just handed to the core.
    pub(crate) fn add_proposal(&mut self, id: ProposalId, reply: ProposalReply<M::Response>) {
        let floor = self.applied;
        self.floors.insert((floor, id));
        self.proposals.insert(id, ProposalWaiter { reply, floor });
    }

    /// The core's outcome for a proposal.
    pub(crate) fn on_proposal_outcome(
        &mut self,
        id: ProposalId,
        result: Result<Index, ProposalError>,
    ) -> Option<Error> {
        let waiter = self.proposals.remove(&id)?;
        self.floors.remove(&(waiter.floor, id));
        let failure = match result {
            Ok(index) if index > self.applied => {
                self.by_index.insert(index, waiter.reply);
                None
            }
            Ok(index) => match self.early.remove(&index) {
                Some(outcome) => {
                    let _ = waiter.reply.send(Ok(outcome));
                    None
                }
                None => {
                    let error = Error::ResponseUnavailable { index };
                    let _ = waiter.reply.send(Err(error.clone()));
                    Some(error)
                }
            },
            Err(error) => {
                let error = Error::from_proposal(error);
                let _ = waiter.reply.send(Err(error.clone()));
                Some(error)
            }
        };
        self.prune_early();
        failure
    }

    /// Results of an apply batch through `index`.
    pub(crate) fn on_applied(
        &mut self,
        index: Index,
        results: Vec<(Index, EntryOutcome<M::Response>)>,
    ) {
        let floor = self.floors.first().map(|(floor, _)| *floor);
        for (at, outcome) in results {
            if let Some(reply) = self.by_index.remove(&at) {
                // The caller may have timed out and gone; nothing to do then.
                let _ = reply.send(Ok(outcome));
            } else if floor.is_some_and(|floor| at > floor) {
                self.early.insert(at, outcome);
            }
        }
        self.applied = self.applied.max(index);
    }

    /// The state machine jumped to snapshot `index`: proposals committed at or below it
    /// whose result was not produced will never get one.
    pub(crate) fn on_restored(&mut self, index: Index) {
        let later = self.by_index.split_off(&(index + 1));
        for (at, reply) in std::mem::replace(&mut self.by_index, later) {
            let _ = reply.send(Err(Error::ResponseUnavailable { index: at }));
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

    pub(crate) fn add_read(&mut self, id: ReadId, query: M::Query, reply: QueryReply<M>) {
        self.reads.insert(id, (query, reply));
    }

    /// The core's outcome for a read: the query and its reply to serve at the index, or
    /// `None` after answering a failure.
    pub(crate) fn on_read_outcome(
        &mut self,
        id: ReadId,
        result: Result<Index, ReadError>,
    ) -> Option<(Index, M::Query, QueryReply<M>)> {
        let (query, reply) = self.reads.remove(&id)?;
        match result {
            Ok(index) => Some((index, query, reply)),
            Err(error) => {
                let _ = reply.send(Err(Error::from_read(error)));
                None
            }
        }
    }

    pub(crate) fn add_change(&mut self, id: ChangeId, reply: ChangeReply) {
        self.changes.insert(id, reply);
    }

    pub(crate) fn on_change_outcome(
        &mut self,
        id: ChangeId,
        result: Result<Box<Membership>, MembershipError>,
    ) {
        if let Some(reply) = self.changes.remove(&id) {
            let _ = reply.send(result.map(|m| *m).map_err(Error::from_membership));
        }
    }

    pub(crate) fn add_transfer(&mut self, reply: TransferReply) {
        self.transfers.push_back(reply);
    }

    /// A transfer outcome. `immediate` when it answers the request just made (the core
    /// refused it at once); otherwise it ends the oldest transfer in progress.
    pub(crate) fn on_transfer_outcome(
        &mut self,
        target: NodeId,
        result: Result<(), TransferError>,
        immediate: bool,
    ) {
        let reply = if immediate {
            self.transfers.pop_back()
        } else {
            self.transfers.pop_front()
        };
        if let Some(reply) = reply {
            let _ = reply.send(result.map(|()| target).map_err(Error::from_transfer));
        }
    }

    /// Fails every waiting request (shutdown or a fatal stop).
    pub(crate) fn fail_all(&mut self, error: &Error) {
        for (_, waiter) in self.proposals.drain() {
            let _ = waiter.reply.send(Err(error.clone()));
        }
        for (_, reply) in std::mem::take(&mut self.by_index) {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, (_, reply)) in self.reads.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.changes.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for reply in self.transfers.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        self.floors.clear();
        self.early.clear();
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

    fn response(result: Result<EntryOutcome<u64>, Error>) -> Result<u64, Error> {
        match result {
            Ok(EntryOutcome::Response(r)) => Ok(r),
            Ok(other) => panic!("unexpected outcome {other:?}"),
            Err(e) => Err(e),
        }
    }

    /// Goal: a leader's proposal (outcome before result) gets its result.
    #[test]
    fn outcome_then_result() {
        let mut pending = Pending::<Echo>::new(0);
        let (tx, mut rx) = oneshot::channel();
        pending.add_proposal(ProposalId(1), tx);
        assert!(pending.on_proposal_outcome(ProposalId(1), Ok(5)).is_none());
        assert!(rx.try_recv().is_err(), "answered before apply");
        pending.on_applied(5, vec![(5, EntryOutcome::Response(50))]);
        assert_eq!(response(rx.try_recv().unwrap()), Ok(50));
    }

    /// Goal: a forwarded proposal whose index arrives after the entry was applied still
    /// gets the state machine's response, and the kept results are then released.
    #[test]
    fn forwarded_result_before_outcome() {
        let mut pending = Pending::<Echo>::new(3);
        let (tx, mut rx) = oneshot::channel();
        pending.add_proposal(ProposalId(1), tx);
        pending.on_applied(
            6,
            vec![
                (4, EntryOutcome::Response(40)),
                (6, EntryOutcome::Response(60)),
            ],
        );
        assert!(pending.on_proposal_outcome(ProposalId(1), Ok(6)).is_none());
        assert_eq!(response(rx.try_recv().unwrap()), Ok(60));
        assert!(
            pending.early.is_empty(),
            "results kept after the last claimant"
        );
    }

    /// Goal: errors map to the runtime's error and restores fail covered waiters.
    #[test]
    fn failures_and_restores() {
        let mut pending = Pending::<Echo>::new(0);
        let (tx, mut rx) = oneshot::channel();
        pending.add_proposal(ProposalId(1), tx);
        pending.on_proposal_outcome(ProposalId(1), Err(ProposalError::Dropped));
        assert_eq!(response(rx.try_recv().unwrap()), Err(Error::Dropped));

        let (tx, mut rx) = oneshot::channel();
        pending.add_proposal(ProposalId(2), tx);
        pending.on_proposal_outcome(ProposalId(2), Ok(9));
        pending.on_restored(10);
        assert_eq!(
            response(rx.try_recv().unwrap()),
            Err(Error::ResponseUnavailable { index: 9 })
        );
    }

    /// Goal: an immediate transfer refusal answers the newest request, a later outcome the
    /// oldest.
    #[test]
    fn transfer_matching() {
        let mut pending = Pending::<Echo>::new(0);
        let (first_tx, mut first) = oneshot::channel();
        let (second_tx, mut second) = oneshot::channel();
        pending.add_transfer(first_tx);
        pending.add_transfer(second_tx);
        pending.on_transfer_outcome(2, Err(TransferError::InProgress), true);
        assert_eq!(
            second.try_recv().unwrap(),
            Err(Error::Transfer(TransferError::InProgress))
        );
        pending.on_transfer_outcome(3, Ok(()), false);
        assert_eq!(first.try_recv().unwrap(), Ok(3));
    }
}
