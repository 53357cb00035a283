//! [`RaftNode`]: the handle applications use, and how a node starts.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use raft_core::{Index, Membership, MembershipChange, Message, NodeId, StateMachine, Storage};
use raft_host::{
    AddressBook, Consistency, Engine, EngineConfig, EngineConfigError, Error, Init, PeerChange,
    PeerInfo, Proposal, Startup,
};
use raft_transport::Transport;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{RuntimeConfig, RuntimeConfigError};
use crate::driver::{Driver, DriverInputs, DriverParts, DriverShared, Request};
use crate::error::StartError;
use crate::lanes;
use crate::lease::LeaseSlot;
use crate::metrics::{Counters, Metrics, add};
use crate::status::{Lifecycle, NodeStatus};

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
    requests: mpsc::Sender<Request<M, A>>,
    book: Arc<RwLock<AddressBook<A>>>,
    counters: Arc<Counters>,
    status: watch::Receiver<NodeStatus>,
    shutdown: watch::Sender<bool>,
    driver: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    request_timeout: Duration,
    /// Lease reads beside the driver: the published grant, the state machine it allows
    /// reading, and the origin of the engine's clock.
    lease: Arc<LeaseSlot>,
    state_machine: Arc<Mutex<M>>,
    origin: Instant,
}

impl From<EngineConfigError> for StartError {
    fn from(error: EngineConfigError) -> Self {
        StartError::Config(match error {
            EngineConfigError::Raft(error) => RuntimeConfigError::Raft(error),
            EngineConfigError::Zero(field) => RuntimeConfigError::Zero(field),
        })
    }
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
        mut state_machine: M,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let id = config.raft.id;
        let span = tracing::info_span!("raft", node = id);
        let restored = tokio::task::spawn_blocking(move || {
            let storage = Mutex::new(storage);
            let startup = raft_host::restore(id, &storage, &mut state_machine, &init)?;
            Ok::<_, StartError>((storage, state_machine, startup))
        })
        .await
        .map_err(|e| StartError::Spawn {
            what: "the restore task",
            reason: e.to_string(),
        })??;
        let (storage, state_machine, startup) = restored;
        let (transport, inbound) = transport;
        spawn_node(
            config,
            startup,
            storage,
            state_machine,
            transport,
            inbound,
            span,
        )
    }
}

fn engine_config(config: &RuntimeConfig) -> EngineConfig {
    let mut engine = EngineConfig::new(config.raft.clone());
    engine.tick_interval = config.tick_interval;
    engine.snapshot_policy = config.snapshot_policy.clone();
    engine
}

/// Registers the engine's starting peers with the transport.
fn register_peers<M, S, T>(
    engine: &mut Engine<M, S, T::Address>,
    transport: &T,
) -> Result<(), StartError>
where
    M: StateMachine,
    S: Storage,
    T: Transport,
    T::Address: Serialize + DeserializeOwned,
{
    while let Some(change) = engine.poll_peer_change() {
        if let PeerChange::Upsert { id, info } = change {
            transport
                .add_peer(id, info.address)
                .map_err(|e| StartError::Peer {
                    id,
                    reason: e.to_string(),
                })?;
        }
    }
    Ok(())
}

fn spawn_node<M, S, T>(
    config: RuntimeConfig,
    startup: Startup<T::Address>,
    storage: Mutex<S>,
    state_machine: M,
    transport: T,
    inbound: mpsc::Receiver<Message>,
    span: tracing::Span,
) -> Result<RaftNode<M, T>, StartError>
where
    M: StateMachine,
    S: Storage,
    T: Transport,
    T::Address: Serialize + DeserializeOwned,
{
    let id = config.raft.id;
    let origin = Instant::now();
    let mut engine = Engine::new(engine_config(&config), startup, Duration::ZERO)?;
    register_peers(&mut engine, &transport)?;
    let storage = Arc::new(storage);
    let counters = Arc::new(Counters::default());
    let (events_sender, events) = mpsc::unbounded_channel();
    let lanes =
        lanes::spawn(&storage, state_machine, &events_sender, &counters, &span).map_err(|e| {
            StartError::Spawn {
                what: "a lane thread",
                reason: e.to_string(),
            }
        })?;
    let initial = NodeStatus {
        raft: engine.status(),
        lifecycle: Lifecycle::Running,
    };
    let (status_sender, status) = watch::channel(initial);
    let (shutdown, shutdown_receiver) = watch::channel(false);
    let (request_sender, requests) = mpsc::channel(config.request_queue_capacity);
    let book = Arc::new(RwLock::new(engine.book().clone()));
    let request_timeout = config.request_timeout;
    let lease = Arc::new(LeaseSlot::new(Arc::clone(&lanes.applied)));
    let state_machine = Arc::clone(&lanes.state_machine);
    let driver = Driver::<M, S, T>::new(DriverParts {
        engine,
        origin,
        config,
        transport: Arc::new(transport),
        storage,
        inputs: DriverInputs {
            inbound,
            requests,
            events,
            events_sender,
            shutdown: shutdown_receiver,
        },
        lanes,
        shared: DriverShared {
            counters: Arc::clone(&counters),
            lease: Arc::clone(&lease),
            book: Arc::clone(&book),
            status: status_sender,
        },
    });
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
            lease,
            state_machine,
            origin,
        }),
        _transport: PhantomData,
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
        let proposal = Proposal::command(&command)?;
        let response = self
            .call(|reply| Request::Propose { proposal, reply })
            .await?;
        add(&self.inner.counters.proposals_applied, 1);
        Ok(response)
    }

    /// Reads with `query` at the given consistency. Linearizable and lease reads work on
    /// any node (followers ask the leader for the read index, then serve locally once they
    /// have applied it). A lease read on the leader is answered here, from the state machine,
    /// while the engine's lease grant allows it (see `raft_host::LeaseGrant`), without a
    /// trip through the driver; otherwise it goes through the driver like the others.
    pub async fn read(
        &self,
        query: M::Query,
        consistency: Consistency,
    ) -> Result<M::QueryResponse, Error> {
        if consistency == Consistency::Lease {
            let counters = &self.inner.counters;
            let now = self.inner.origin.elapsed();
            let served = self
                .inner
                .lease
                .try_serve(&self.inner.state_machine, now, &query);
            if let Some(response) = served {
                add(&counters.reads_submitted, 1);
                add(&counters.reads_lease_fast, 1);
                return Ok(response);
            }
            add(&counters.reads_lease_fallback, 1);
        }
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
        self.call(|reply| Request::SetPeer {
            id,
            info: peer,
            reply,
        })
        .await
    }

    /// Hands leadership to `target` (or to the most up-to-date voter for `None`); returns
    /// the new leader's id once it leads. Call it on the leader.
    pub async fn transfer_leadership(&self, target: Option<NodeId>) -> Result<NodeId, Error> {
        self.call(|reply| Request::Transfer { target, reply }).await
    }

    /// Snapshots the state machine now (saved and the log compacted as for automatic
    /// snapshots); returns the saved snapshot's index. A request made while a snapshot is
    /// being taken is answered with that one; [`Error::SnapshotFailed`] if saving fails.
    pub async fn trigger_snapshot(&self) -> Result<Index, Error> {
        self.call(|reply| Request::Snapshot { reply }).await
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
        make: impl FnOnce(oneshot::Sender<Result<R, Error>>) -> Request<M, T::Address>,
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
