//! Inbound side: the accept loop and one reader task per accepted connection.
//!
//! Each new connection is booked with [`Admission`] (bounded pending handshakes, oldest
//! evicted first, and a cap on open connections), must finish its handshake (TLS when on,
//! then the hello) within `handshake_timeout`, and is then a known peer's connection on one
//! lane, until either side closes it. A refusal closes the connection without a word, is
//! counted, and is logged once per change per remote address. Anything wrong after the
//! handshake closes that connection alone, with one log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use raft_core::{Message, NodeId};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug, info, warn};

use crate::admission::{EstablishedSlot, PendingSlot};
use crate::error::{ConnectionError, HandshakeError};
use crate::frame::{FrameDecoder, read_frame};
use crate::handshake::{HELLO_BYTES, Hello, Lane, Reply};
use crate::inbound_queue::InboundQueue;
use crate::link::Stop;
use crate::metrics::{PeerCounters, add, bump};
use crate::refusals::Refusal;
use crate::stream::{BoxedStream, configure_socket};
use crate::tcp::Shared;
use crate::tls::certificate_names_node;

/// Pause after a failed `accept` (for example out of file descriptors) so the loop does
/// not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Read buffer kept between frames; a larger one (grown by a big frame) is released once
/// it has been emptied.
const IDLE_BUFFER_MAX_BYTES: usize = 256 << 10;

/// Socket read size under TLS (see [`secure`]): as plaintext connections read.
const TLS_READ_BUFFER_BYTES: usize = 64 << 10;

/// Accepts connections until shutdown, then waits for their tasks to end.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_watch();
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
        let Some(slot) = shared.admission.arrive(remote.ip()) else {
            // Dropping the stream closes it at once.
            let error = ConnectionError::Timeout("a free connection slot");
            refuse(&shared, remote, Refusal::OverCapacity, &error);
            continue;
        };
        let span = tracing::info_span!("inbound", node = shared.config.node_id, %remote);
        let connection = serve_connection(stream, remote, Arc::clone(&shared), slot);
        connections.spawn(connection.instrument(span));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Counts a refusal and logs it: at warn when it is news for that address, else at debug.
fn refuse(shared: &Shared, remote: SocketAddr, kind: Refusal, error: &ConnectionError) {
    kind.count(&shared.counters);
    if shared.refusals.is_news(remote.ip(), kind) {
        warn!(%remote, %error, "refused inbound connection (logged again only when the reason changes)");
    } else {
        debug!(%remote, %error, "refused inbound connection");
    }
}

/// What a successful handshake establishes.
struct Admitted {
    peer_id: NodeId,
    lane: Lane,
    counters: Arc<PeerCounters>,
    peer_stop: watch::Receiver<Stop>,
    inbound: Arc<InboundQueue>,
    /// Holds the connection's place in the books until it closes.
    _slot: EstablishedSlot,
}

/// What the hello established, before the connection has its slot.
struct Greeted {
    peer_id: NodeId,
    lane: Lane,
    peer: crate::tcp::InboundPeer,
}

/// Runs one inbound connection from handshake to close.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    slot: PendingSlot,
) {
    let mut shutdown = shared.shutdown_watch();
    let outcome = tokio::select! {
        biased;
        _ = shutdown.changed() => return,
        outcome = handshake(stream, &shared, slot) => outcome,
    };
    let (mut stream, admitted) = match outcome {
        Ok(admitted) => admitted,
        Err(error) => {
            refuse(&shared, remote, Refusal::of(&error), &error);
            return;
        }
    };
    shared.refusals.admitted(remote.ip());
    bump(&shared.counters.connections_accepted);
    let (peer_id, lane) = (admitted.peer_id, admitted.lane);
    debug!(
        peer = peer_id,
        lane = lane.name(),
        "accepted connection from peer"
    );
    let result = read_messages(&mut stream, &shared, admitted, &mut shutdown).await;
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

/// The whole handshake under one deadline: TLS (when on), the hello, a slot for the
/// peer's lane, the reply. Ends early if a newer connection evicts this one while pending.
async fn handshake(
    stream: TcpStream,
    shared: &Shared,
    slot: PendingSlot,
) -> Result<(BoxedStream, Admitted), ConnectionError> {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let timed_out = |_| ConnectionError::Timeout("handshake");
    configure_socket(&stream, &shared.config)?;
    let greeting = async {
        let (mut stream, certificate) = secure(stream, shared).await?;
        let greeted = read_hello(&mut stream, certificate.as_ref(), shared).await?;
        Ok::<_, ConnectionError>((stream, greeted))
    };
    let (mut stream, greeted) = tokio::select! {
        biased;
        () = slot.evicted() => return Err(ConnectionError::Evicted),
        greeted = timeout_at(deadline, greeting) => greeted.map_err(timed_out)??,
    };
    let established = slot.establish(greeted.peer_id, greeted.lane)?;
    let reply = Reply {
        cluster_id: shared.config.cluster_id,
        node_id: shared.config.node_id,
    };
    let answer = async {
        stream.write_all(&reply.encode()).await?;
        stream.flush().await
    };
    timeout_at(deadline, answer).await.map_err(timed_out)??;
    let admitted = Admitted {
        peer_id: greeted.peer_id,
        lane: greeted.lane,
        counters: greeted.peer.counters,
        peer_stop: greeted.peer.stop,
        inbound: greeted.peer.inbound,
        _slot: established,
    };
    Ok((stream, admitted))
}

/// Runs the TLS handshake when TLS is on, returning the stream and the peer's verified
/// end-entity certificate.
async fn secure(
    stream: TcpStream,
    shared: &Shared,
) -> Result<(BoxedStream, Option<CertificateDer<'static>>), ConnectionError> {
    let Some(tls) = &shared.config.tls else {
        return Ok((Box::new(stream), None));
    };
    // rustls reads at most 4 KiB per call; a buffer below it lets one system call fetch
    // several records, which more than doubled TLS throughput of 64 KiB messages.
    let buffered = BufReader::with_capacity(TLS_READ_BUFFER_BYTES, stream);
    let stream = tls
        .acceptor()
        .accept(buffered)
        .await
        .map_err(ConnectionError::Tls)?;
    // The client verifier demands a certificate, so a completed handshake has one.
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|certificate| certificate.clone().into_owned())
        .ok_or_else(|| ConnectionError::Tls(std::io::Error::other("no client certificate")))?;
    Ok((Box::new(stream), Some(certificate)))
}

/// Reads and checks the hello: protocol, cluster, lane, a known peer, and (with TLS) a
/// certificate that names the id the hello claims. Nothing is written back here: a
/// refusal just closes the connection, so it tells a stranger nothing.
async fn read_hello(
    stream: &mut BoxedStream,
    certificate: Option<&CertificateDer<'static>>,
    shared: &Shared,
) -> Result<Greeted, ConnectionError> {
    let mut hello_bytes = [0; HELLO_BYTES];
    stream.read_exact(&mut hello_bytes).await?;
    let hello = Hello::decode(&hello_bytes)?;
    let peer = shared.peer_for_inbound(hello.node_id);
    let lane = hello.validate(shared.config.cluster_id, |_| peer.is_some())?;
    let Some(peer) = peer else {
        return Err(HandshakeError::UnknownNode(hello.node_id).into());
    };
    if let Some(certificate) = certificate
        && !certificate_names_node(certificate, hello.node_id)
    {
        return Err(HandshakeError::IdentityMismatch {
            claimed: hello.node_id,
        }
        .into());
    }
    Ok(Greeted {
        peer_id: hello.node_id,
        lane,
        peer,
    })
}

/// Reads frames, checks who sent them and to whom, and hands them to the node. Waits for
/// room in the inbound queue (messages and bytes) rather than dropping: a node that falls
/// behind slows its peers' TCP streams instead of losing what it already received.
async fn read_messages(
    stream: &mut BoxedStream,
    shared: &Shared,
    mut admitted: Admitted,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let decoder = FrameDecoder::new(shared.config.max_frame_bytes);
    let mut buffer = BytesMut::new();
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            _ = admitted.peer_stop.changed() => return Ok(()),
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
}
