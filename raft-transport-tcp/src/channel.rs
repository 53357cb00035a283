//! [`ChannelNetwork`] and [`ChannelTransport`]: the [`Transport`] inside one process, for
//! tests and examples.
//!
//! A network is a hub; each node takes an endpoint from it. Sending looks up the target's
//! inbound queue in the hub and `try_send`s into it, so it never blocks, and a full queue,
//! a missing endpoint or a cut link drops the message and counts it, as TCP would. Like TCP,
//! a message is delivered only if each side lists the other as a peer (the receiver's check
//! stands in for the handshake). Links can be cut one way with
//! [`ChannelNetwork::set_link`] to script partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use raft_core::{Message, NodeId};
use tokio::sync::mpsc;

use crate::error::PeerError;
use crate::frame::LENGTH_PREFIX_BYTES;
use crate::metrics::{
    ConnectionState, PeerCounters, TransportCounters, TransportMetrics, add, bump,
};
use crate::transport::Transport;

/// Inbound queue capacity of endpoints made by [`ChannelNetwork::endpoint`], the same as
/// TCP's default.
pub const DEFAULT_INBOUND_CAPACITY_MESSAGES: usize = 4096;

type PeerTable = Arc<Mutex<BTreeMap<NodeId, Arc<PeerCounters>>>>;

/// A hub that connects in-process endpoints. Cloning shares the hub.
#[derive(Clone, Debug, Default)]
pub struct ChannelNetwork {
    hub: Arc<Mutex<Hub>>,
}

#[derive(Debug, Default)]
struct Hub {
    endpoints: BTreeMap<NodeId, Endpoint>,
    /// Links cut with `set_link(from, to, false)`.
    cut: BTreeSet<(NodeId, NodeId)>,
}

#[derive(Debug)]
struct Endpoint {
    inbound: mpsc::Sender<Message>,
    peers: PeerTable,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent, so a panic elsewhere while one was
    // held does not make the data unusable.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl ChannelNetwork {
    /// An empty network.
    pub fn new() -> ChannelNetwork {
        ChannelNetwork::default()
    }

    /// Joins node `id` to the network with the default inbound capacity. See
    /// [`ChannelNetwork::endpoint_with_capacity`].
    pub fn endpoint(&self, id: NodeId) -> (ChannelTransport, mpsc::Receiver<Message>) {
        self.endpoint_with_capacity(id, DEFAULT_INBOUND_CAPACITY_MESSAGES)
    }

    /// Joins node `id` to the network and returns its transport and inbound receiver.
    /// Joining again with the same id replaces the old endpoint (a restarted node): messages
    /// go to the new receiver from then on.
    ///
    /// # Panics
    /// If `inbound_capacity_messages` is 0 (an API misuse, as in `tokio::sync::mpsc`).
    pub fn endpoint_with_capacity(
        &self,
        id: NodeId,
        inbound_capacity_messages: usize,
    ) -> (ChannelTransport, mpsc::Receiver<Message>) {
        assert!(
            inbound_capacity_messages > 0,
            "inbound capacity must be positive"
        );
        let (inbound, receiver) = mpsc::channel(inbound_capacity_messages);
        let peers = PeerTable::default();
        let endpoint = Endpoint {
            inbound,
            peers: Arc::clone(&peers),
        };
        lock(&self.hub).endpoints.insert(id, endpoint);
        let transport = ChannelTransport {
            id,
            hub: Arc::clone(&self.hub),
            peers,
            counters: Arc::new(TransportCounters::default()),
            is_shut_down: Arc::new(AtomicBool::new(false)),
        };
        (transport, receiver)
    }

    /// Cuts (`up = false`) or restores the one-way link from `from` to `to`.
    pub fn set_link(&self, from: NodeId, to: NodeId, up: bool) {
        let mut hub = lock(&self.hub);
        if up {
            hub.cut.remove(&(from, to));
        } else {
            hub.cut.insert((from, to));
        }
    }
}

/// One node's endpoint on a [`ChannelNetwork`]. Cloning shares the endpoint.
#[derive(Clone, Debug)]
pub struct ChannelTransport {
    id: NodeId,
    hub: Arc<Mutex<Hub>>,
    peers: PeerTable,
    counters: Arc<TransportCounters>,
    is_shut_down: Arc<AtomicBool>,
}

/// Why a message was not delivered.
enum Undelivered {
    Unreachable,
    QueueFull,
}

impl ChannelTransport {
    /// Hands `message` to the target's inbound queue, counting receipt on the target side.
    fn deliver(&self, message: Message, size_bytes: u64) -> Result<(), Undelivered> {
        let hub = lock(&self.hub);
        if hub.cut.contains(&(self.id, message.to)) {
            return Err(Undelivered::Unreachable);
        }
        let target = hub
            .endpoints
            .get(&message.to)
            .ok_or(Undelivered::Unreachable)?;
        let receiver_counters = lock(&target.peers).get(&self.id).cloned();
        let Some(receiver_counters) = receiver_counters else {
            // The receiver does not know us: TCP would refuse the handshake.
            return Err(Undelivered::Unreachable);
        };
        match target.inbound.try_send(message) {
            Ok(()) => {
                bump(&receiver_counters.messages_received);
                add(&receiver_counters.bytes_received, size_bytes);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Undelivered::QueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Undelivered::Unreachable),
        }
    }

    /// Whether `to` would accept a message from this endpoint now.
    fn link_state(&self, hub: &Hub, to: NodeId) -> ConnectionState {
        let reachable = !hub.cut.contains(&(self.id, to))
            && hub.endpoints.get(&to).is_some_and(|target| {
                !target.inbound.is_closed() && lock(&target.peers).contains_key(&self.id)
            });
        if reachable {
            ConnectionState::Connected
        } else {
            ConnectionState::Disconnected
        }
    }
}

/// The size `message` would have as a TCP frame, so byte counters mean the same thing for
/// both transports.
fn frame_bytes(message: &Message) -> u64 {
    struct Counter(u64);
    impl io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let body = postcard::to_io(message, Counter(0)).map_or(0, |counter| counter.0);
    LENGTH_PREFIX_BYTES as u64 + body
}

#[async_trait]
impl Transport for ChannelTransport {
    type Address = ();

    fn node_id(&self) -> NodeId {
        self.id
    }

    fn send(&self, message: Message) {
        let Some(counters) = lock(&self.peers).get(&message.to).cloned() else {
            bump(&self.counters.dropped_unknown_peer);
            return;
        };
        let size_bytes = frame_bytes(&message);
        match self.deliver(message, size_bytes) {
            Ok(()) => {
                bump(&counters.messages_sent);
                add(&counters.bytes_sent, size_bytes);
                bump(&counters.writes);
            }
            Err(Undelivered::QueueFull) => bump(&counters.dropped_queue_full),
            Err(Undelivered::Unreachable) => bump(&counters.dropped_unreachable),
        }
    }

    fn add_peer(&self, id: NodeId, _address: ()) -> Result<(), PeerError> {
        if id == 0 {
            return Err(PeerError::ZeroNodeId);
        }
        if id == self.id {
            return Err(PeerError::SelfPeer(id));
        }
        if self.is_shut_down.load(Ordering::Acquire) {
            return Err(PeerError::ShutDown);
        }
        lock(&self.peers).entry(id).or_default();
        Ok(())
    }

    fn remove_peer(&self, id: NodeId) -> bool {
        lock(&self.peers).remove(&id).is_some()
    }

    fn peers(&self) -> Vec<NodeId> {
        lock(&self.peers).keys().copied().collect()
    }

    fn metrics(&self) -> TransportMetrics {
        let peers: Vec<(NodeId, Arc<PeerCounters>)> = lock(&self.peers)
            .iter()
            .map(|(id, counters)| (*id, Arc::clone(counters)))
            .collect();
        let hub = lock(&self.hub);
        let snapshots = peers
            .into_iter()
            .map(|(id, counters)| {
                let mut snapshot = counters.snapshot();
                snapshot.state = self.link_state(&hub, id);
                snapshot.snapshot_state = snapshot.state;
                (id, snapshot)
            })
            .collect();
        self.counters.snapshot(snapshots)
    }

    async fn shutdown(&self) {
        self.is_shut_down.store(true, Ordering::Release);
        lock(&self.peers).clear();
        let mut hub = lock(&self.hub);
        // Remove our endpoint only if it is still ours (not replaced by a restart).
        if hub
            .endpoints
            .get(&self.id)
            .is_some_and(|endpoint| Arc::ptr_eq(&endpoint.peers, &self.peers))
        {
            hub.endpoints.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raft_core::{Entry, EntryPayload, MessageBody};

    use super::*;

    fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Message {
        Message {
            from,
            to,
            term: 1,
            body: MessageBody::Heartbeat { commit: 0, round },
        }
    }

    fn three_nodes() -> (
        ChannelNetwork,
        Vec<(ChannelTransport, mpsc::Receiver<Message>)>,
    ) {
        let network = ChannelNetwork::new();
        let nodes: Vec<_> = (1..=3).map(|id| network.endpoint(id)).collect();
        for (transport, _) in &nodes {
            for peer in 1..=3 {
                if peer != transport.node_id() {
                    transport.add_peer(peer, ()).expect("valid peer");
                }
            }
        }
        (network, nodes)
    }

    /// Goal: every node reaches every other, and the counters agree with what happened.
    #[tokio::test]
    async fn three_endpoints_exchange_messages() {
        let (_network, mut nodes) = three_nodes();
        for (transport, _) in &nodes {
            for peer in transport.peers() {
                transport.send(heartbeat(transport.node_id(), peer, transport.node_id()));
            }
        }
        for (transport, receiver) in &mut nodes {
            let mut senders = BTreeSet::new();
            for _ in 0..2 {
                let message = receiver.recv().await.expect("message");
                assert_eq!(message.to, transport.node_id());
                senders.insert(message.from);
            }
            assert_eq!(senders.len(), 2);
            let metrics = transport.metrics();
            for peer in metrics.peers.values() {
                assert_eq!(peer.messages_sent, 1);
                assert_eq!(peer.messages_received, 1);
                assert_eq!(peer.state, ConnectionState::Connected);
            }
        }
    }

    /// Goal: a cut link drops and counts; healing it restores delivery; unknown targets and
    /// senders the receiver does not know are dropped too.
    #[tokio::test]
    async fn cut_links_and_strangers_drop_and_count() {
        let (network, mut nodes) = three_nodes();
        network.set_link(1, 2, false);
        nodes[0].0.send(heartbeat(1, 2, 1));
        assert!(nodes[1].1.try_recv().is_err());
        let metrics = nodes[0].0.metrics();
        assert_eq!(metrics.peers[&2].dropped_unreachable, 1);
        assert_eq!(metrics.peers[&2].state, ConnectionState::Disconnected);
        // The other direction still works: the cut is one-way.
        nodes[1].0.send(heartbeat(2, 1, 1));
        assert_eq!(nodes[0].1.recv().await, Some(heartbeat(2, 1, 1)));

        network.set_link(1, 2, true);
        nodes[0].0.send(heartbeat(1, 2, 2));
        assert_eq!(nodes[1].1.recv().await, Some(heartbeat(1, 2, 2)));

        nodes[0].0.send(heartbeat(1, 9, 1));
        assert_eq!(nodes[0].0.metrics().dropped_unknown_peer, 1);
        assert!(nodes[2].0.remove_peer(1));
        nodes[0].0.send(heartbeat(1, 3, 1));
        assert_eq!(nodes[0].0.metrics().peers[&3].dropped_unreachable, 1);
    }

    /// Goal: a full inbound queue drops instead of blocking the sender, and the byte
    /// counter matches the TCP frame size.
    #[tokio::test]
    async fn full_queue_drops_without_blocking() {
        let network = ChannelNetwork::new();
        let (sender, _) = network.endpoint(1);
        let (receiver, mut inbound) = network.endpoint_with_capacity(2, 1);
        sender.add_peer(2, ()).expect("valid peer");
        receiver.add_peer(1, ()).expect("valid peer");
        let append = Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Append {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![Entry {
                    term: 1,
                    index: 1,
                    payload: EntryPayload::Command(Bytes::from_static(b"hello")),
                }],
                leader_commit: 0,
            },
        };
        sender.send(append.clone());
        sender.send(append.clone());
        let metrics = sender.metrics().peers[&2].clone();
        assert_eq!(metrics.messages_sent, 1);
        assert_eq!(metrics.dropped_queue_full, 1);
        let mut frame = Vec::new();
        crate::frame::encode_frame(&append, u32::MAX, &mut frame).expect("encodes");
        assert_eq!(metrics.bytes_sent, frame.len() as u64);
        assert_eq!(inbound.recv().await, Some(append));
    }

    /// Goal: after shutdown the endpoint is gone: its receiver ends, peers see it as
    /// unreachable, and it refuses new peers.
    #[tokio::test]
    async fn shutdown_leaves_the_network() {
        let (_network, mut nodes) = three_nodes();
        let (first, mut first_inbound) = nodes.remove(0);
        first.shutdown().await;
        assert_eq!(first_inbound.recv().await, None);
        assert_eq!(first.add_peer(2, ()), Err(PeerError::ShutDown));
        nodes[0].0.send(heartbeat(2, 1, 1));
        assert_eq!(nodes[0].0.metrics().peers[&1].dropped_unreachable, 1);
    }
}
