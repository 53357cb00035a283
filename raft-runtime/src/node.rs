//! [`RaftNode`]: the handle applications use, and how a node starts.

use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use raft_core::{
    Membership, MembershipChange, Message, Node, NodeId, RestoredState, SnapshotMeta, StateMachine,
    Storage,
};
use raft_transport_tcp::Transport;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::apply::{self, ApplyStart};
use crate::config::RuntimeConfig;
use crate::disk;
use crate::driver::{
    Consistency, Driver, DriverInputs, DriverShared, Lanes, Request, founding_membership,
};
use crate::envelope::{self, AddressBook, PeerInfo};
use crate::error::{Error, StartError};
use crate::event::{EntryOutcome, LaneEvent};
use crate::metrics::{Counters, Metrics, add};
use crate::status::{Lifecycle, NodeStatus};

/// How a node joins its cluster on its first start. On a restart (the storage holds
/// state) the storage wins and only the peer addresses are used.
#[derive(Clone, Debug)]
pub enum Init<A> {
    /// Found a new cluster whose voters are exactly `members` (this node included), with
    /// their addresses. Give every founding member the same map.
    Bootstrap {
        /// Every founding member and its address.
        members: AddressBook<A>,
    },
    /// Start empty and wait to be added by the leader (see [`RaftNode::add_learner`]).
    /// `peers` are current members' addresses, so this node accepts their connections
    /// before the replicated address book reaches it.
    Join {
        /// Addresses of (some of) the current members; the leader at least.
        peers: AddressBook<A>,
    },
    /// Restart from the storage alone.
    Restart,
}

/// A running Raft node hosting state machine `M` over transport `T`. Cheap to clone; every
/// clone drives the same node. The node shuts down on [`RaftNode::shutdown`] or when the
/// last handle is dropped.
pub struct RaftNode<M: StateMachine, T: Transport> {
    inner: Arc<Inner<M, T::Address>>,
    _transport: PhantomData<fn() -> T>,
}

impl<M: StateMachine, T: Transport> Clone for RaftNode<M, T> {
    fn clone(&self) -> Self {
        RaftNode {
            inner: Arc::clone(&self.inner),
            _transport: PhantomData,
        }
    }
}

struct Inner<M: StateMachine, A> {
    id: NodeId,
    requests: mpsc::Sender<Request<M>>,
    book: Arc<RwLock<AddressBook<A>>>,
    counters: Arc<Counters>,
    status: watch::Receiver<NodeStatus>,
    shutdown: watch::Sender<bool>,
    driver: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    request_timeout: Duration,
}

/// What `prepare` restored from the storage.
struct Prepared<M, S, A> {
    storage: S,
    state_machine: M,
    restored: RestoredState,
    /// The replicated address book as of the snapshot.
    book: AddressBook<A>,
}

impl<M, T> RaftNode<M, T>
where
    M: StateMachine,
    T: Transport,
    T::Address: Serialize + DeserializeOwned,
{
    /// Starts a node: restores it from `storage` (bootstrapping or joining per `init` when
    /// the storage is empty), loads the latest snapshot into `state_machine` (pass an empty
    /// one), registers peers with the transport and spawns the driver, the disk lane and the
    /// apply lane. Entries committed before a restart are re-applied from the snapshot up to
    /// the persisted commit index, so the state machine never goes backwards.
    ///
    /// `transport` is what `TcpTransport::bind` or `ChannelNetwork::endpoint` return.
    /// Must be called within a tokio runtime.
    pub async fn start<S: Storage>(
        config: RuntimeConfig,
        init: Init<T::Address>,
        storage: S,
        transport: (T, mpsc::Receiver<Message>),
        state_machine: M,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let id = config.raft.id;
        let span = tracing::info_span!("raft", node = id);
        let prepared = {
            let init = init.clone();
            tokio::task::spawn_blocking(move || prepare(id, storage, state_machine, &init))
                .await
                .map_err(|e| StartError::Snapshot {
                    index: 0,
                    reason: format!("restore task failed: {e}"),
                })??
        };
        let Prepared {
            storage,
            state_machine,
            restored,
            book,
        } = prepared;
        let snapshot = restored.snapshot.clone();
        let node =
            Node::new(config.raft.clone(), restored).map_err(|e| StartError::Config(e.into()))?;
        let (transport, inbound) = transport;
        let mut local_book = book.clone();
        if let Init::Join { peers } | Init::Bootstrap { members: peers } = &init {
            for (peer, info) in peers {
                local_book.entry(*peer).or_insert_with(|| info.clone());
            }
        }
        for (peer, info) in &local_book {
            if *peer != id {
                transport
                    .add_peer(*peer, info.address.clone())
                    .map_err(|e| StartError::Peer {
                        id: *peer,
                        reason: e.to_string(),
                    })?;
            }
        }
        let parts = Parts {
            config,
            node,
            snapshot,
            storage: Arc::new(Mutex::new(storage)),
            state_machine,
            book,
            local_book,
            transport: Arc::new(transport),
            inbound,
        };
        spawn_node(parts, span)
    }
}

/// Everything `spawn_node` wires together.
struct Parts<M, S, T: Transport> {
    config: RuntimeConfig,
    node: Node,
    snapshot: SnapshotMeta,
    storage: Arc<Mutex<S>>,
    state_machine: M,
    book: AddressBook<T::Address>,
    local_book: AddressBook<T::Address>,
    transport: Arc<T>,
    inbound: mpsc::Receiver<Message>,
}

fn spawn_node<M, S, T>(
    parts: Parts<M, S, T>,
    span: tracing::Span,
) -> Result<RaftNode<M, T>, StartError>
where
    M: StateMachine,
    S: Storage,
    T: Transport,
    T::Address: Serialize + DeserializeOwned,
{
    let Parts {
        config,
        node,
        snapshot,
        storage,
        state_machine,
        book,
        local_book,
        transport,
        inbound,
    } = parts;
    let id = config.raft.id;
    let counters = Arc::new(Counters::default());
    let snapshot_busy = Arc::new(AtomicBool::new(false));
    let (events_sender, events) = mpsc::unbounded_channel();
    let apply_start = ApplyStart {
        state_machine,
        applied: snapshot.index,
        membership: snapshot.membership.clone(),
        book,
        policy: config.snapshot_policy.clone(),
        snapshot_busy: Arc::clone(&snapshot_busy),
    };
    let lanes =
        spawn_lanes::<M, S, T::Address>(apply_start, &storage, &events_sender, &counters, &span)?;
    let initial = NodeStatus {
        raft: node.status(),
        lifecycle: Lifecycle::Running,
    };
    let (status_sender, status) = watch::channel(initial);
    let (shutdown, shutdown_receiver) = watch::channel(false);
    let (request_sender, requests) = mpsc::channel(config.request_queue_capacity);
    let book = Arc::new(RwLock::new(local_book));
    let request_timeout = config.request_timeout;
    let driver = Driver::<M, S, T>::new(
        node,
        config,
        transport,
        storage,
        DriverInputs {
            inbound,
            requests,
            events,
            events_sender,
            shutdown: shutdown_receiver,
        },
        lanes,
        DriverShared {
            counters: Arc::clone(&counters),
            book: Arc::clone(&book),
            status: status_sender,
            snapshot_busy,
        },
    );
    let handle = tokio::spawn(driver.run().instrument(span));
    Ok(RaftNode {
        inner: Arc::new(Inner {
            id,
            requests: request_sender,
            book,
            counters,
            status,
            shutdown,
            driver: tokio::sync::Mutex::new(Some(handle)),
            request_timeout,
        }),
        _transport: PhantomData,
    })
}

/// Starts the disk and apply lanes' threads.
fn spawn_lanes<M, S, A>(
    apply_start: ApplyStart<M, A>,
    storage: &Arc<Mutex<S>>,
    events: &mpsc::UnboundedSender<LaneEvent<M, A>>,
    counters: &Arc<Counters>,
    span: &tracing::Span,
) -> Result<Lanes<M>, StartError>
where
    M: StateMachine,
    S: Storage,
    A: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + 'static,
{
    let thread_error = |e: std::io::Error| StartError::Storage {
        operation: "spawning a lane thread",
        source: Box::new(e),
    };
    let (disk, disk_thread) = disk::spawn::<S, M, A>(
        Arc::clone(storage),
        events.clone(),
        Arc::clone(counters),
        span.clone(),
    )
    .map_err(thread_error)?;
    let (apply, apply_thread) = apply::spawn(
        apply_start,
        Arc::clone(storage),
        events.clone(),
        Arc::clone(counters),
        span.clone(),
    )
    .map_err(thread_error)?;
    Ok(Lanes {
        disk,
        disk_thread,
        apply,
        apply_thread,
    })
}

/// Blocking part of `start`: restore from storage, or bootstrap an empty one.
fn prepare<M, S, A>(
    id: NodeId,
    mut storage: S,
    mut state_machine: M,
    init: &Init<A>,
) -> Result<Prepared<M, S, A>, StartError>
where
    M: StateMachine,
    S: Storage,
    A: Clone + Serialize + DeserializeOwned,
{
    let restored = storage
        .restore()
        .map_err(|e| StartError::storage("restore", e))?;
    let is_empty = restored.hard_state == Default::default()
        && restored.snapshot.index == 0
        && restored.entries.is_empty()
        && restored.snapshot.membership.members().is_empty();
    if is_empty && let Init::Bootstrap { members } = init {
        return bootstrap(id, storage, state_machine, members);
    }
    let storage = Mutex::new(storage);
    let loaded =
        apply::restore_from_storage::<M, S, A>(&mut state_machine, &storage).map_err(|reason| {
            StartError::Snapshot {
                index: restored.snapshot.index,
                reason,
            }
        })?;
    let book = loaded.and_then(|(_, book)| book).unwrap_or_default();
    let storage = storage.into_inner().map_err(|_| StartError::Snapshot {
        index: restored.snapshot.index,
        reason: "storage lock poisoned during restore".into(),
    })?;
    tracing::info!(
        node = id,
        snapshot_index = restored.snapshot.index,
        entries = restored.entries.len(),
        commit = restored.hard_state.commit,
        term = restored.hard_state.term,
        "restored from storage"
    );
    Ok(Prepared {
        storage,
        state_machine,
        restored,
        book,
    })
}

/// Founds a cluster: the founding membership and address book go into a snapshot at index
/// 0, so they survive restarts like any other snapshot.
fn bootstrap<M, S, A>(
    id: NodeId,
    storage: S,
    state_machine: M,
    members: &AddressBook<A>,
) -> Result<Prepared<M, S, A>, StartError>
where
    M: StateMachine,
    S: Storage,
    A: Clone + Serialize + DeserializeOwned,
{
    if !members.contains_key(&id) {
        return Err(StartError::BootstrapWithoutSelf(id));
    }
    let membership = founding_membership(members);
    let meta = SnapshotMeta {
        index: 0,
        term: 0,
        membership: membership.clone(),
    };
    let storage = Mutex::new(storage);
    crate::snapshot::save::<M, S, A>(&storage, meta, state_machine.snapshot(), members).map_err(
        |reason| StartError::Storage {
            operation: "bootstrap snapshot",
            source: reason.into(),
        },
    )?;
    let storage = storage.into_inner().map_err(|_| StartError::Storage {
        operation: "bootstrap",
        source: "storage lock poisoned".into(),
    })?;
    tracing::info!(node = id, membership = %membership.describe(), "bootstrapped a new cluster");
    Ok(Prepared {
        storage,
        state_machine,
        restored: RestoredState::bootstrap(membership),
        book: members.clone(),
    })
}

impl<M, T> RaftNode<M, T>
where
    M: StateMachine,
    T: Transport,
    T::Address: Serialize + DeserializeOwned,
{
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Proposes `command` and returns the state machine's response once the command is
    /// applied on this node. Works on followers too (the proposal is forwarded to the
    /// leader). On [`Error::Timeout`] or [`Error::OutcomeUnknown`] the command may still
    /// apply: make retries safe with client sessions in the command.
    pub async fn propose(&self, command: M::Command) -> Result<M::Response, Error> {
        let bytes = envelope::encode_command::<M::Command, T::Address>(&command).map_err(|e| {
            Error::Encode {
                reason: e.to_string(),
            }
        })?;
        match self.propose_bytes(Bytes::from(bytes)).await? {
            EntryOutcome::Response(response) => {
                add(&self.inner.counters.proposals_applied, 1);
                Ok(response)
            }
            EntryOutcome::Invalid { index, reason } => Err(Error::InvalidCommand { index, reason }),
            EntryOutcome::Elided { index } => Err(Error::ResponseUnavailable { index }),
            EntryOutcome::PeersUpdated => Err(Error::InvalidCommand {
                index: 0,
                reason: "the entry decoded as an address record".into(),
            }),
        }
    }

    async fn propose_bytes(&self, data: Bytes) -> Result<EntryOutcome<M::Response>, Error> {
        self.call(|reply| Request::Propose { data, reply }).await
    }

    /// Reads with `query` at the given consistency. Linearizable and lease reads work on
    /// any node (followers ask the leader for the read index, then serve locally once they
    /// have applied it).
    pub async fn read(
        &self,
        query: M::Query,
        consistency: Consistency,
    ) -> Result<M::QueryResponse, Error> {
        self.call(|reply| Request::Read {
            query,
            consistency,
            reply,
        })
        .await
    }

    /// Adds a non-voting learner reachable at `peer`. The address is first recorded in the
    /// replicated address book (so every node can reach it), then the membership changes.
    /// Start the new node with [`Init::Join`] first. Returns the new membership.
    pub async fn add_learner(
        &self,
        id: NodeId,
        peer: PeerInfo<T::Address>,
    ) -> Result<Membership, Error> {
        self.set_peer_info(id, peer).await?;
        self.change_membership(vec![MembershipChange::AddLearner(id)])
            .await
    }

    /// Adds a full voter reachable at `peer` (the core replicates to it as a learner until
    /// it has caught up). See [`RaftNode::add_learner`].
    pub async fn add_voter(
        &self,
        id: NodeId,
        peer: PeerInfo<T::Address>,
    ) -> Result<Membership, Error> {
        self.set_peer_info(id, peer).await?;
        self.change_membership(vec![MembershipChange::AddVoter(id)])
            .await
    }

    /// Adds a witness reachable at `peer`: it votes, stores no command payloads, never
    /// leads. Witnesses do not see address records (they are commands), so start a witness
    /// with [`Init::Join`] listing every member.
    pub async fn add_witness(
        &self,
        id: NodeId,
        peer: PeerInfo<T::Address>,
    ) -> Result<Membership, Error> {
        self.set_peer_info(id, peer).await?;
        self.change_membership(vec![MembershipChange::AddWitness(id)])
            .await
    }

    /// Turns a learner into a voter.
    pub async fn promote_learner(&self, id: NodeId) -> Result<Membership, Error> {
        self.change_membership(vec![MembershipChange::PromoteLearner(id)])
            .await
    }

    /// Turns a voter into a learner.
    pub async fn demote_voter(&self, id: NodeId) -> Result<Membership, Error> {
        self.change_membership(vec![MembershipChange::DemoteVoter(id)])
            .await
    }

    /// Removes a node, whatever its role. Its address leaves the book once the removal is
    /// applied; a removed leader steps down.
    pub async fn remove_node(&self, id: NodeId) -> Result<Membership, Error> {
        self.change_membership(vec![MembershipChange::Remove(id)])
            .await
    }

    /// Applies several membership changes at once through joint consensus. Peers added here
    /// must already be in the address book ([`RaftNode::set_peer_info`]).
    pub async fn change_membership(
        &self,
        changes: Vec<MembershipChange>,
    ) -> Result<Membership, Error> {
        self.call(|reply| Request::ChangeMembership { changes, reply })
            .await
    }

    /// Records (or moves) node `id`'s address in the replicated address book, through the
    /// log; every node's transport learns it when the record applies. The record carries
    /// the whole book as this node knows it, so a newly added node learns every member.
    pub async fn set_peer_info(&self, id: NodeId, peer: PeerInfo<T::Address>) -> Result<(), Error> {
        let mut records: Vec<_> = self
            .peers()
            .into_iter()
            .filter(|(known, _)| *known != id)
            .collect();
        records.push((id, peer));
        let bytes = envelope::encode_peers(records).map_err(|e| Error::Encode {
            reason: e.to_string(),
        })?;
        match self.propose_bytes(Bytes::from(bytes)).await? {
            EntryOutcome::PeersUpdated => Ok(()),
            EntryOutcome::Invalid { index, reason } => Err(Error::InvalidCommand { index, reason }),
            // The record applied, but on a witness, which keeps no address book.
            EntryOutcome::Elided { .. } => Ok(()),
            EntryOutcome::Response(_) => Err(Error::InvalidCommand {
                index: 0,
                reason: "the address record decoded as a command".into(),
            }),
        }
    }

    /// Hands leadership to `target` (or to the most up-to-date voter for `None`); returns
    /// the new leader's id once it leads. Call it on the leader.
    pub async fn transfer_leadership(&self, target: Option<NodeId>) -> Result<NodeId, Error> {
        self.call(|reply| Request::Transfer { target, reply }).await
    }

    /// Asks the apply lane to snapshot the state machine now (it is saved and the log
    /// compacted in the background, as for automatic snapshots). Ignored while a snapshot
    /// is being saved; watch `status().raft.snapshot_index` to see it land.
    pub async fn trigger_snapshot(&self) -> Result<(), Error> {
        self.inner
            .requests
            .send(Request::Snapshot)
            .await
            .map_err(|_| self.closed_error())
    }

    /// The node's current status.
    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every status change (role, term, leader, commit, applied, ...).
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.inner.status.clone()
    }

    /// Waits until `condition` holds for the status, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl FnMut(&NodeStatus) -> bool,
    ) -> Result<NodeStatus, Error> {
        let mut status = self.watch_status();
        match tokio::time::timeout(timeout, status.wait_for(condition)).await {
            Ok(Ok(status)) => Ok(status.clone()),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(Error::Timeout {
                waited_ms: duration_ms(timeout),
            }),
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.status.borrow().raft.leader
    }

    /// The address book as this node knows it: the replicated records plus the peers it was
    /// started with.
    pub fn peers(&self) -> AddressBook<T::Address> {
        self.inner
            .book
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// A snapshot of the node's counters and latencies.
    pub fn metrics(&self) -> Metrics {
        self.inner.counters.snapshot()
    }

    /// Stops the node gracefully: queued disk writes and applies finish, every waiting
    /// client gets [`Error::Shutdown`], the transport closes its connections. Returns the
    /// fatal error if the node had already stopped on one.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let _ = self.inner.shutdown.send(true);
        let handle = self.inner.driver.lock().await.take();
        if let Some(handle) = handle
            && let Err(error) = handle.await
        {
            return Err(Error::Stopped {
                reason: format!("the driver task failed: {error}"),
            });
        }
        match &self.status().lifecycle {
            Lifecycle::Failed { reason } => Err(Error::Stopped {
                reason: reason.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Sends a request and waits for its answer, within the request timeout.
    async fn call<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<R, Error>>) -> Request<M>,
    ) -> Result<R, Error> {
        let (reply, answer) = oneshot::channel();
        let request = make(reply);
        let timeout = self.inner.request_timeout;
        let exchange = async {
            self.inner
                .requests
                .send(request)
                .await
                .map_err(|_| self.closed_error())?;
            answer.await.map_err(|_| self.closed_error())?
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                waited_ms: duration_ms(timeout),
            }),
        };
        result.map_err(|error| self.with_leader_address(error))
    }

    /// Fills the leader's addresses into a `NotLeader` error from the address book.
    fn with_leader_address(&self, error: Error) -> Error {
        match error {
            Error::NotLeader {
                leader_hint: Some(leader),
                leader_addr: None,
                leader_client_url: None,
            } => {
                let info = self.peers().remove(&leader);
                Error::NotLeader {
                    leader_hint: Some(leader),
                    leader_addr: info.as_ref().map(|i| format!("{:?}", i.address)),
                    leader_client_url: info.and_then(|i| i.client_url),
                }
            }
            other => other,
        }
    }

    fn closed_error(&self) -> Error {
        match &self.inner.status.borrow().lifecycle {
            Lifecycle::Failed { reason } => Error::Stopped {
                reason: reason.clone(),
            },
            _ => Error::Shutdown,
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
