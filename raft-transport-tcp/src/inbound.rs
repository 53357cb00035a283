//! Inbound side: the accept loop and one reader task per accepted connection.
//!
//! A new connection must complete the handshake within `handshake_timeout`, and at most
//! `max_pending_handshakes` may be doing so at once, so strangers cost little. After the
//! handshake it carries frames from one known peer on one lane; a newer connection for the
//! same peer and lane replaces it (the peer restarted or redialled), so each peer holds at
//! most two. Anything wrong closes that connection alone, with one log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use raft_core::{Message, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{Instrument, debug, info, warn};

use crate::error::{ConnectionError, HandshakeError};
use crate::frame::{FrameDecoder, read_frame};
use crate::handshake::{HELLO_BYTES, Hello, Lane, Reply};
use crate::inbound_queue::InboundQueue;
use crate::link::Stop;
use crate::metrics::{PeerCounters, add, bump};
use crate::tcp::Shared;

/// Pause after a failed `accept` (for example out of file descriptors) so the loop does
/// not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Read buffer kept between frames; a larger one (grown by a big frame) is released once
/// it has been emptied.
const IDLE_BUFFER_MAX_BYTES: usize = 256 << 10;

/// Accepts connections until shutdown, then waits for their tasks to end.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_watch();
    let handshake_slots = Arc::new(Semaphore::new(shared.config.max_pending_handshakes));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&handshake_slots).try_acquire_owned() else {
            bump(&shared.counters.handshakes_rejected);
            debug!(%remote, "too many pending handshakes; closing new connection");
            continue;
        };
        let span = tracing::info_span!("inbound", node = shared.config.node_id, %remote);
        let connection = serve_connection(stream, Arc::clone(&shared), slot);
        connections.spawn(connection.instrument(span));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What a successful handshake establishes.
struct Admitted {
    peer_id: NodeId,
    lane: Lane,
    counters: Arc<PeerCounters>,
    peer_stop: watch::Receiver<Stop>,
    inbound: Arc<InboundQueue>,
}

/// Runs one inbound connection from handshake to close.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, slot: OwnedSemaphorePermit) {
    let mut shutdown = shared.shutdown_watch();
    let _ = stream.set_nodelay(true);
    let handshake = timeout(shared.config.handshake_timeout, admit(&mut stream, &shared));
    let outcome = tokio::select! {
        biased;
        _ = shutdown.changed() => return,
        outcome = handshake => outcome.unwrap_or(Err(ConnectionError::Timeout("handshake"))),
    };
    drop(slot);
    let admitted = match outcome {
        Ok(admitted) => admitted,
        Err(error) => {
            bump(&shared.counters.handshakes_rejected);
            warn!(%error, "closing inbound connection: handshake failed");
            return;
        }
    };
    bump(&shared.counters.connections_accepted);
    let (peer_id, lane) = (admitted.peer_id, admitted.lane);
    debug!(
        peer = peer_id,
        lane = lane.name(),
        "accepted connection from peer"
    );
    let (connection_id, replaced) = shared.register_inbound(peer_id, lane);
    let result = read_messages(&mut stream, &shared, admitted, &replaced, &mut shutdown).await;
    shared.unregister_inbound(peer_id, lane, connection_id);
    match result {
        Ok(()) => debug!(
            peer = peer_id,
            lane = lane.name(),
            "inbound connection closed"
        ),
        Err(error) if error.is_protocol_violation() => {
            bump(&shared.counters.frames_rejected);
            warn!(peer = peer_id, lane = lane.name(), %error, "closing inbound connection: bad frame");
        }
        Err(error) => {
            info!(peer = peer_id, lane = lane.name(), %error, "inbound connection ended");
        }
    }
}

/// Reads and checks the hello, answers it, and looks up the peer.
async fn admit(stream: &mut TcpStream, shared: &Shared) -> Result<Admitted, ConnectionError> {
    let mut hello_bytes = [0; HELLO_BYTES];
    stream.read_exact(&mut hello_bytes).await?;
    let hello = Hello::decode(&hello_bytes)?;
    let peer = shared.peer_for_inbound(hello.node_id);
    let outcome = hello.validate(shared.config.cluster_id, |_| peer.is_some());
    let reply = Reply::for_outcome(&outcome, shared.config.cluster_id, shared.config.node_id);
    if let Some(reply) = reply {
        stream.write_all(&reply.encode()).await?;
    }
    let lane = outcome?;
    let Some(peer) = peer else {
        return Err(HandshakeError::UnknownNode(hello.node_id).into());
    };
    Ok(Admitted {
        peer_id: hello.node_id,
        lane,
        counters: peer.counters,
        peer_stop: peer.stop,
        inbound: peer.inbound,
    })
}

/// Reads frames, checks who sent them and to whom, and hands them to the node. Waits for
/// room in the inbound queue (messages and bytes) rather than dropping: a node that falls
/// behind slows its peers' TCP streams instead of losing what it already received.
async fn read_messages(
    stream: &mut TcpStream,
    shared: &Shared,
    mut admitted: Admitted,
    replaced: &Notify,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let decoder = FrameDecoder::new(shared.config.max_frame_bytes);
    let mut buffer = BytesMut::new();
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            _ = admitted.peer_stop.changed() => return Ok(()),
            () = replaced.notified() => return Ok(()),
            frame = read_frame(stream, &mut buffer, decoder) => frame?,
        };
        let Some((message, frame_bytes)) = frame else {
            return Ok(());
        };
        if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER_MAX_BYTES {
            // A snapshot chunk grew the buffer; an idle connection should not keep it.
            buffer = BytesMut::new();
        }
        check_addressing(&message, admitted.peer_id, shared.config.node_id)?;
        bump(&admitted.counters.messages_received);
        add(&admitted.counters.bytes_received, frame_bytes as u64);
        tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            _ = admitted.peer_stop.changed() => return Ok(()),
            delivered = admitted.inbound.deliver(message, frame_bytes as u64) => {
                if delivered.is_err() {
                    // The node dropped its receiver: it is going away.
                    return Ok(());
                }
            }
        }
    }
}

/// A message must come from the node that completed the handshake and be for this node.
fn check_addressing(
    message: &Message,
    handshake_id: NodeId,
    local_id: NodeId,
) -> Result<(), ConnectionError> {
    if message.from != handshake_id {
        return Err(ConnectionError::SenderMismatch {
            handshake: handshake_id,
            claimed: message.from,
        });
    }
    if message.to != local_id {
        return Err(ConnectionError::WrongRecipient {
            to: message.to,
            local: local_id,
        });
    }
    Ok(())
}

/// The live inbound connection of each (peer, lane): its id and its "close" signal.
type LiveConnections = std::collections::BTreeMap<(NodeId, Lane), (u64, Arc<Notify>)>;

/// Tracks the live inbound connection of each (peer, lane), so a newer one replaces it.
#[derive(Debug, Default)]
pub(crate) struct InboundRegistry {
    next_id: AtomicU64,
    live: std::sync::Mutex<LiveConnections>,
}

impl InboundRegistry {
    /// Records a new connection and tells the one it replaces (if any) to close.
    pub(crate) fn register(&self, peer_id: NodeId, lane: Lane) -> (u64, Arc<Notify>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((_, older)) = live.insert((peer_id, lane), (id, Arc::clone(&notify))) {
            // `notify_one` stores a permit, so the older reader sees it even if it is not
            // waiting at this instant.
            older.notify_one();
        }
        (id, notify)
    }

    /// Forgets a connection that ended, unless a newer one already took its place.
    pub(crate) fn unregister(&self, peer_id: NodeId, lane: Lane, id: u64) {
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if live
            .get(&(peer_id, lane))
            .is_some_and(|(live_id, _)| *live_id == id)
        {
            live.remove(&(peer_id, lane));
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_core::MessageBody;

    use super::*;

    /// Goal: a peer cannot speak for another node or address a third one.
    #[test]
    fn addressing_is_checked_against_the_handshake() {
        let message = Message {
            from: 2,
            to: 1,
            term: 1,
            body: MessageBody::TimeoutNow,
        };
        assert!(check_addressing(&message, 2, 1).is_ok());
        assert!(matches!(
            check_addressing(&message, 3, 1),
            Err(ConnectionError::SenderMismatch {
                handshake: 3,
                claimed: 2
            })
        ));
        assert!(matches!(
            check_addressing(&message, 2, 4),
            Err(ConnectionError::WrongRecipient { to: 1, local: 4 })
        ));
    }

    /// Goal: a newer connection for the same peer and lane tells the older one to close,
    /// and the older one's exit does not unregister the newer.
    #[tokio::test]
    async fn newer_connection_replaces_older() {
        let registry = InboundRegistry::default();
        let (first_id, first) = registry.register(2, Lane::Ordinary);
        let (second_id, _second) = registry.register(2, Lane::Ordinary);
        let _other_lane = registry.register(2, Lane::Snapshot);
        tokio::time::timeout(Duration::from_secs(1), first.notified())
            .await
            .expect("older connection told to close");
        registry.unregister(2, Lane::Ordinary, first_id);
        let live = registry.live.lock().expect("not poisoned");
        assert_eq!(
            live.get(&(2, Lane::Ordinary)).map(|(id, _)| *id),
            Some(second_id)
        );
        assert_eq!(live.len(), 2);
    }
}
