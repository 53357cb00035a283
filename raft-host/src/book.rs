//! The replicated address book as the engine keeps it, and the changes the driver must
//! make to its transport.
//!
//! Two views: `replicated` is exactly what the log and snapshots say (it goes into every
//! snapshot this node saves); `known` adds the peers the node was started with, so it can
//! reach (and accept) current members before the replicated records reach it. Removing a
//! member from the membership removes its address from both.

use std::collections::VecDeque;

use raft_core::{Membership, NodeId};

use crate::envelope::{AddressBook, PeerInfo};

/// A change the driver makes to its transport ([`crate::Engine::poll_peer_change`]). Never
/// names this node itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerChange<A> {
    /// Add the peer, or move it to a new address.
    Upsert {
        /// The peer.
        id: NodeId,
        /// How to reach it.
        info: PeerInfo<A>,
    },
    /// Forget the peer: it left the membership.
    Remove {
        /// The peer.
        id: NodeId,
    },
}

pub(crate) struct Book<A> {
    me: NodeId,
    pub(crate) replicated: AddressBook<A>,
    pub(crate) known: AddressBook<A>,
    /// The latest configuration applied (to notice removed members).
    membership: Membership,
    pub(crate) changes: VecDeque<PeerChange<A>>,
}

impl<A: Clone> Book<A> {
    /// The book restored from the snapshot plus the peers given at start; every peer is
    /// queued as a change so the driver registers it.
    pub(crate) fn new(
        me: NodeId,
        replicated: AddressBook<A>,
        start_peers: &AddressBook<A>,
        membership: Membership,
    ) -> Self {
        let mut known = replicated.clone();
        for (id, info) in start_peers {
            known.entry(*id).or_insert_with(|| info.clone());
        }
        let changes = known
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, info)| PeerChange::Upsert {
                id: *id,
                info: info.clone(),
            })
            .collect();
        Book {
            me,
            replicated,
            known,
            membership,
            changes,
        }
    }

    fn upsert(&mut self, id: NodeId, info: PeerInfo<A>) {
        if id != self.me {
            self.changes.push_back(PeerChange::Upsert {
                id,
                info: info.clone(),
            });
        }
        self.replicated.insert(id, info.clone());
        self.known.insert(id, info);
    }

    fn remove(&mut self, id: NodeId) {
        if id != self.me {
            self.changes.push_back(PeerChange::Remove { id });
        }
        self.replicated.remove(&id);
        self.known.remove(&id);
    }

    /// Address records applied from the log.
    pub(crate) fn on_records(&mut self, records: Vec<(NodeId, PeerInfo<A>)>)
    where
        A: std::fmt::Debug,
    {
        for (id, info) in records {
            tracing::info!(peer = id, address = ?info.address, "address book updated");
            self.upsert(id, info);
        }
    }

    /// A configuration applied from the log: members it removed leave the book.
    pub(crate) fn on_membership(&mut self, next: Membership) {
        let before = self.membership.members();
        let after = next.members();
        for id in before.difference(&after) {
            tracing::info!(peer = id, "member removed; address dropped");
            self.remove(*id);
        }
        self.membership = next;
    }

    /// The state machine was replaced by a snapshot carrying `book` (`None`: a snapshot
    /// without state, which keeps the book as it is).
    pub(crate) fn on_restored(&mut self, book: Option<AddressBook<A>>, membership: Membership) {
        if let Some(book) = book {
            let gone: Vec<NodeId> = self
                .replicated
                .keys()
                .filter(|id| !book.contains_key(id))
                .copied()
                .collect();
            for id in gone {
                self.remove(id);
            }
            for (id, info) in book {
                self.upsert(id, info);
            }
        }
        self.membership = membership;
    }
}
