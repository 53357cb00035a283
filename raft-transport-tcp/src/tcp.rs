//! [`TcpTransport`]: the [`Transport`] over real sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use raft_core::{Message, NodeId};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use crate::admission::{Admission, Limits, PER_PEER_LANE_MAX};
use crate::config::TcpConfig;
use crate::error::{PeerError, StartError};
use crate::inbound::accept_loop;
use crate::inbound_queue::InboundQueue;
use crate::link::{PeerLink, Stop};
use crate::metrics::{PeerCounters, TransportCounters, TransportMetrics, bump};
use crate::refusals::RefusalLog;
use crate::transport::Transport;

/// A [`Transport`] over TCP.
///
/// Each peer gets two persistent outbound connections (the ordinary lane and the snapshot
/// lane), each fed by its own bounded queue and writer task; inbound connections are
/// accepted on [`TcpConfig::listen_addr`] and their messages delivered, checked, on the
/// receiver returned by [`TcpTransport::bind`]. See the crate docs for the wire format and
/// the failure handling.
///
/// Cloning is cheap and every clone drives the same endpoint.
#[derive(Clone, Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

/// State shared by the transport handle, the accept loop and the connection tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<TcpConfig>,
    pub(crate) counters: TransportCounters,
    runtime: Handle,
    peers: Mutex<BTreeMap<NodeId, PeerLink>>,
    /// Taken at shutdown so the node's receiver ends once the readers are gone.
    inbound: Mutex<Option<Arc<InboundQueue>>>,
    /// The books of inbound connections (pending and established).
    pub(crate) admission: Arc<Admission>,
    /// Which refusals were already logged, per remote address.
    pub(crate) refusals: RefusalLog,
    shutdown: watch::Sender<bool>,
    is_shut_down: AtomicBool,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

/// Locks a mutex, going on with the data if a thread panicked while holding it: every
/// critical section here leaves the maps consistent at each step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What an inbound connection from a known peer is given.
pub(crate) struct InboundPeer {
    /// The peer's counters (received messages and bytes).
    pub(crate) counters: Arc<PeerCounters>,
    /// Changes when the peer is removed or the transport stops.
    pub(crate) stop: watch::Receiver<Stop>,
    /// Where accepted messages go.
    pub(crate) inbound: Arc<InboundQueue>,
}

impl Shared {
    /// A receiver that changes when the transport shuts down.
    pub(crate) fn shutdown_watch(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// What an inbound connection from `id` needs, if `id` is a peer and the transport
    /// is running.
    pub(crate) fn peer_for_inbound(&self, id: NodeId) -> Option<InboundPeer> {
        let inbound = lock(&self.inbound).clone()?;
        let peers = lock(&self.peers);
        let link = peers.get(&id)?;
        Some(InboundPeer {
            counters: Arc::clone(link.counters()),
            stop: link.stop_watch(),
            inbound,
        })
    }
}

impl TcpTransport {
    /// Starts listening on `config.listen_addr` and returns the transport together with the
    /// receiver of inbound messages. Add peers with [`Transport::add_peer`].
    ///
    /// Must be called from within a tokio runtime; the transport's tasks run on it.
    pub async fn bind(
        config: TcpConfig,
    ) -> Result<(TcpTransport, mpsc::Receiver<Message>), StartError> {
        config.validate()?;
        if let Some(tls) = &config.tls {
            tls.check_node_id(config.node_id)?;
        }
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let (inbound_queue, inbound_receiver) = InboundQueue::new(
            config.inbound_queue_capacity_messages,
            config.inbound_queue_max_bytes,
        );
        let (shutdown, _) = watch::channel(false);
        let node_id = config.node_id;
        let limits = Limits {
            pending_max: config.max_pending_handshakes,
            pending_per_ip_max: config.max_pending_handshakes_per_ip,
            inbound_max: config.max_inbound_connections,
            per_peer_lane_max: PER_PEER_LANE_MAX,
        };
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            counters: TransportCounters::default(),
            runtime: Handle::current(),
            peers: Mutex::new(BTreeMap::new()),
            inbound: Mutex::new(Some(Arc::new(inbound_queue))),
            admission: Admission::new(limits),
            refusals: RefusalLog::default(),
            shutdown,
            is_shut_down: AtomicBool::new(false),
            accept_task: Mutex::new(None),
        });
        let span = tracing::info_span!("accept", node = node_id, %local_addr);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)).instrument(span));
        *lock(&shared.accept_task) = Some(accept);
        info!(node = node_id, %local_addr, "transport listening");
        let transport = TcpTransport { shared, local_addr };
        Ok((transport, inbound_receiver))
    }

    /// The address peers should dial (the bound port when `listen_addr` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the transport runs with.
    pub fn config(&self) -> &TcpConfig {
        &self.shared.config
    }
}

#[async_trait]
impl Transport for TcpTransport {
    type Address = SocketAddr;

    fn node_id(&self) -> NodeId {
        self.shared.config.node_id
    }

    fn send(&self, message: Message) {
        let peers = lock(&self.shared.peers);
        match peers.get(&message.to) {
            Some(link) => link.enqueue(message),
            None => {
                bump(&self.shared.counters.dropped_unknown_peer);
                debug!(
                    to = message.to,
                    kind = message.kind(),
                    "dropping message to unknown peer"
                );
            }
        }
    }

    fn add_peer(&self, id: NodeId, address: SocketAddr) -> Result<(), PeerError> {
        if id == 0 {
            return Err(PeerError::ZeroNodeId);
        }
        if id == self.shared.config.node_id {
            return Err(PeerError::SelfPeer(id));
        }
        let mut peers = lock(&self.shared.peers);
        // Checked under the lock, so a link cannot be added after shutdown took them all.
        if self.shared.is_shut_down.load(Ordering::Acquire) {
            return Err(PeerError::ShutDown);
        }
        let counters = match peers.remove(&id) {
            Some(link) if link.address() == address => {
                peers.insert(id, link);
                return Ok(());
            }
            Some(link) => {
                info!(peer = id, old = %link.address(), new = %address, "peer moved");
                let counters = Arc::clone(link.counters());
                // The old writers end on their own; nothing waits for them.
                drop(link.close(Stop::Abort));
                counters
            }
            None => {
                info!(peer = id, %address, "peer added");
                Arc::new(PeerCounters::default())
            }
        };
        let link = PeerLink::spawn(
            &self.shared.runtime,
            &self.shared.config,
            id,
            address,
            counters,
        );
        peers.insert(id, link);
        Ok(())
    }

    fn remove_peer(&self, id: NodeId) -> bool {
        let removed = lock(&self.shared.peers).remove(&id);
        match removed {
            Some(link) => {
                info!(peer = id, "peer removed");
                drop(link.close(Stop::Abort));
                true
            }
            None => false,
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        lock(&self.shared.peers).keys().copied().collect()
    }

    fn metrics(&self) -> TransportMetrics {
        let peers = lock(&self.shared.peers)
            .iter()
            .map(|(id, link)| (*id, link.counters().snapshot()))
            .collect();
        self.shared.counters.snapshot(peers)
    }

    async fn shutdown(&self) {
        let links = {
            let mut peers = lock(&self.shared.peers);
            if self.shared.is_shut_down.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *peers)
        };
        self.shared.shutdown.send_replace(true);
        lock(&self.shared.inbound).take();
        let mut tasks: Vec<JoinHandle<()>> = links
            .into_values()
            .flat_map(|link| link.close(Stop::Drain))
            .collect();
        tasks.extend(lock(&self.shared.accept_task).take());
        let deadline = tokio::time::Instant::now() + self.shared.config.shutdown_timeout;
        for task in &mut tasks {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                warn!("transport task did not stop in time; aborting it");
                task.abort();
            }
        }
        info!(node = self.shared.config.node_id, "transport shut down");
    }
}
