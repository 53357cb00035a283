//! Outbound side: one link per peer, made of one writer task per lane.
//!
//! Each lane owns a bounded queue and one persistent connection. The writer waits for a
//! message, then takes everything else already queued (up to `coalesce_max_bytes`), writes
//! it with one `write_all` under the write timeout, and repeats. While connected it also
//! watches the socket's read side, which the receiver never writes to after the handshake,
//! so a peer that closes or restarts is noticed at once rather than at the next write.
//!
//! When a dial fails the lane backs off; messages sent while it waits are dropped and
//! counted, because Raft will resend what still matters and stale heartbeats are useless.
//! A lane logs once when it goes down and once when it comes back, never per attempt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use raft_core::{Message, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::{Instrument, debug, info, warn};

use crate::backoff::{Backoff, jitter_seed};
use crate::config::TcpConfig;
use crate::error::{ConnectionError, FrameError, HandshakeError};
use crate::frame::encode_frame;
use crate::handshake::{HELLO_BYTES, Hello, Lane, Reply};
use crate::metrics::{ConnectionState, PeerCounters, add, bump};
use crate::stream::{BoxedStream, configure_socket};
use crate::tls::node_server_name;

/// How a link is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep running.
    Run,
    /// Write what is queued if connected (transport shutdown), then close.
    Drain,
    /// Close now, discarding the queue (peer removed or moved).
    Abort,
}

/// The outbound half of one peer: its queues, its counters and its writer tasks.
#[derive(Debug)]
pub(crate) struct PeerLink {
    address: SocketAddr,
    counters: Arc<PeerCounters>,
    queues: [mpsc::Sender<Message>; 2],
    queue_full_reported: Arc<[AtomicBool; 2]>,
    stop: watch::Sender<Stop>,
    tasks: Vec<JoinHandle<()>>,
}

impl PeerLink {
    /// Starts the writer tasks of a link to `peer_id` at `address`.
    pub(crate) fn spawn(
        runtime: &Handle,
        config: &Arc<TcpConfig>,
        peer_id: NodeId,
        address: SocketAddr,
        counters: Arc<PeerCounters>,
    ) -> PeerLink {
        let (stop, _) = watch::channel(Stop::Run);
        let queue_full_reported = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let mut tasks = Vec::with_capacity(Lane::ALL.len());
        let queues = Lane::ALL.map(|lane| {
            let capacity = match lane {
                Lane::Ordinary => config.queue_capacity_messages,
                Lane::Snapshot => config.snapshot_queue_capacity_messages,
            };
            let (sender, receiver) = mpsc::channel(capacity);
            counters.set_state(lane, ConnectionState::Connecting);
            let writer = LaneWriter {
                config: Arc::clone(config),
                peer_id,
                address,
                lane,
                queue: receiver,
                queue_full_reported: Arc::clone(&queue_full_reported),
                stop: stop.subscribe(),
                counters: Arc::clone(&counters),
                batch: Vec::new(),
                oversized_reported: false,
            };
            let span = tracing::info_span!(
                "peer_link",
                node = config.node_id,
                peer = peer_id,
                lane = lane.name()
            );
            tasks.push(runtime.spawn(writer.run().instrument(span)));
            sender
        });
        PeerLink {
            address,
            counters,
            queues,
            queue_full_reported,
            stop,
            tasks,
        }
    }

    /// The address this link dials.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The link's counters.
    pub(crate) fn counters(&self) -> &Arc<PeerCounters> {
        &self.counters
    }

    /// A receiver that changes when the link stops; inbound connections from the same peer
    /// watch it so that removing a peer also closes what it dialled.
    pub(crate) fn stop_watch(&self) -> watch::Receiver<Stop> {
        self.stop.subscribe()
    }

    /// Queues `message` on its lane without waiting; drops and counts it if the queue is
    /// full. Logs once when a queue fills up, not per dropped message.
    pub(crate) fn enqueue(&self, message: Message) {
        let slot = lane_slot(Lane::of(&message));
        match self.queues[slot].try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                bump(&self.counters.dropped_queue_full);
                if !self.queue_full_reported[slot].swap(true, Ordering::Relaxed) {
                    warn!(
                        peer = message.to,
                        lane = Lane::of(&message).name(),
                        "send queue full; dropping messages to this peer until it drains"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                bump(&self.counters.dropped_unreachable);
            }
        }
    }

    /// Tells the writers to stop and hands back their tasks for the caller to await.
    pub(crate) fn close(mut self, mode: Stop) -> Vec<JoinHandle<()>> {
        self.stop.send_replace(mode);
        std::mem::take(&mut self.tasks)
    }
}

fn lane_slot(lane: Lane) -> usize {
    match lane {
        Lane::Ordinary => 0,
        Lane::Snapshot => 1,
    }
}

/// How a connection ended.
enum Ended {
    /// The link was told to stop.
    Stopped,
    /// The connection failed; reconnect.
    Broken(ConnectionError),
}

/// The task that owns one lane of one link.
struct LaneWriter {
    config: Arc<TcpConfig>,
    peer_id: NodeId,
    address: SocketAddr,
    lane: Lane,
    queue: mpsc::Receiver<Message>,
    queue_full_reported: Arc<[AtomicBool; 2]>,
    stop: watch::Receiver<Stop>,
    counters: Arc<PeerCounters>,
    /// Reused between writes so steady traffic allocates nothing.
    batch: Vec<u8>,
    /// Whether an oversized message was already logged at warn level.
    oversized_reported: bool,
}

/// How long a new link may fail to connect before that is worth a warning.
const STARTUP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl LaneWriter {
    /// Dial, serve, back off, repeat, until told to stop.
    async fn run(mut self) {
        let seed = jitter_seed(self.config.node_id, self.peer_id);
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max, seed);
        let mut ever_connected = false;
        // Whether the current outage has been logged. Every connection ends in `break` or
        // in a logged loss, so a success needs no reset.
        let mut outage_reported = false;
        // Peers of a cluster start one by one: failures before the first connection are not
        // worth a warning until this grace period has passed.
        let started = tokio::time::Instant::now();
        loop {
            self.counters
                .set_state(self.lane, ConnectionState::Connecting);
            let attempt = tokio::select! {
                biased;
                _ = self.stop.changed() => break,
                attempt = dial(&self.config, self.peer_id, self.address, self.lane) => attempt,
            };
            match attempt {
                Ok(stream) => {
                    backoff.reset();
                    if ever_connected {
                        bump(&self.counters.reconnects);
                    }
                    ever_connected = true;
                    self.counters
                        .set_state(self.lane, ConnectionState::Connected);
                    // One line per peer: the snapshot lane follows the ordinary one.
                    if self.lane == Lane::Ordinary {
                        info!(address = %self.address, "connected to peer");
                    } else {
                        debug!(address = %self.address, "connected to peer");
                    }
                    match self.serve(stream).await {
                        Ended::Stopped => break,
                        Ended::Broken(error) => {
                            warn!(address = %self.address, %error, "connection to peer lost; reconnecting");
                            outage_reported = true;
                        }
                    }
                }
                Err(error) => {
                    bump(&self.counters.connect_failures);
                    if outage_reported {
                        debug!(address = %self.address, %error, "peer still unreachable");
                    } else if !ever_connected && started.elapsed() < STARTUP_GRACE {
                        debug!(address = %self.address, %error, "peer not up yet; retrying");
                    } else {
                        warn!(
                            address = %self.address, %error,
                            "peer unreachable; retrying with backoff (logged again only when it changes)"
                        );
                        outage_reported = true;
                    }
                }
            }
            self.counters
                .set_state(self.lane, ConnectionState::Disconnected);
            if !self.wait_out(backoff.next_delay()).await {
                break;
            }
        }
        self.counters.set_state(self.lane, ConnectionState::Closed);
    }

    /// Waits `delay` before the next dial, dropping (and counting) what is sent meanwhile.
    /// Returns false if the link was told to stop.
    async fn wait_out(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                _ = self.stop.changed() => return false,
                () = &mut sleep => return true,
                message = self.queue.recv() => match message {
                    Some(_) => bump(&self.counters.dropped_unreachable),
                    None => return false,
                },
            }
        }
    }

    /// Writes queued messages to `stream` until it breaks or the link stops.
    async fn serve(&mut self, stream: BoxedStream) -> Ended {
        let (mut reader, mut writer) = tokio::io::split(stream);
        loop {
            let first = tokio::select! {
                biased;
                changed = self.stop.changed() => {
                    if changed.is_ok() && *self.stop.borrow() == Stop::Drain {
                        self.drain(&mut writer).await;
                    }
                    return Ended::Stopped;
                }
                error = watch_for_close(&mut reader) => return Ended::Broken(error),
                message = self.queue.recv() => match message {
                    Some(message) => message,
                    None => return Ended::Stopped,
                },
            };
            if let Err(error) = self.write_batch(first, &mut writer).await {
                return Ended::Broken(error);
            }
        }
    }

    /// Encodes `first` and whatever else is queued (up to the coalescing limit), then
    /// writes it all at once.
    async fn write_batch(
        &mut self,
        first: Message,
        writer: &mut WriteHalf<BoxedStream>,
    ) -> Result<(), ConnectionError> {
        self.batch.clear();
        let mut count = u64::from(self.encode(&first));
        while self.batch.len() < self.config.coalesce_max_bytes {
            let Ok(message) = self.queue.try_recv() else {
                break;
            };
            count += u64::from(self.encode(&message));
        }
        if count == 0 {
            return Ok(());
        }
        // The flush matters with TLS, which may keep encrypted records until asked.
        let write = timeout(self.config.write_timeout, async {
            writer.write_all(&self.batch).await?;
            writer.flush().await
        });
        write
            .await
            .map_err(|_| ConnectionError::Timeout("write"))??;
        add(&self.counters.messages_sent, count);
        add(&self.counters.bytes_sent, self.batch.len() as u64);
        bump(&self.counters.writes);
        if self.queue.is_empty() {
            let slot = lane_slot(self.lane);
            if self.queue_full_reported[slot].swap(false, Ordering::Relaxed) {
                info!("send queue drained; no longer dropping messages to this peer");
            }
        }
        // A one-off huge batch (a snapshot chunk) should not pin its buffer forever.
        if self.batch.capacity() > 4 * self.config.coalesce_max_bytes {
            self.batch = Vec::new();
        }
        Ok(())
    }

    /// Appends one frame to the batch; returns false (and counts) if the message is too
    /// large to send.
    fn encode(&mut self, message: &Message) -> bool {
        match encode_frame(message, self.config.max_frame_bytes, &mut self.batch) {
            Ok(_) => true,
            Err(error) => {
                bump(&self.counters.dropped_oversized);
                let oversized = matches!(error, FrameError::Oversized { .. });
                if oversized && self.oversized_reported {
                    debug!(kind = message.kind(), %error, "dropping message");
                } else {
                    warn!(kind = message.kind(), %error, "dropping message that cannot be sent");
                    self.oversized_reported |= oversized;
                }
                false
            }
        }
    }

    /// On shutdown: one last batch of what is queued, bounded by the write timeout.
    async fn drain(&mut self, writer: &mut WriteHalf<BoxedStream>) {
        while let Ok(message) = self.queue.try_recv() {
            if let Err(error) = self.write_batch(message, writer).await {
                debug!(%error, "could not flush queued messages at shutdown");
                return;
            }
        }
        let _ = writer.shutdown().await;
    }
}

/// Completes when the receiving side closes the connection or sends anything (it never
/// should after the handshake).
async fn watch_for_close(reader: &mut ReadHalf<BoxedStream>) -> ConnectionError {
    let mut probe = [0; 1];
    match reader.read(&mut probe).await {
        Ok(0) => ConnectionError::ClosedByPeer,
        Ok(_) => ConnectionError::UnexpectedData,
        Err(error) => ConnectionError::Io(error),
    }
}

/// Opens a connection to the peer and completes the handshake (TLS, then hello and
/// reply), within the timeouts.
async fn dial(
    config: &TcpConfig,
    peer_id: NodeId,
    address: SocketAddr,
    lane: Lane,
) -> Result<BoxedStream, ConnectionError> {
    let connect = timeout(config.connect_timeout, TcpStream::connect(address));
    let tcp = connect
        .await
        .map_err(|_| ConnectionError::Timeout("connect"))??;
    configure_socket(&tcp, config)?;
    let hello = Hello::new(lane, config.cluster_id, config.node_id).encode();
    let handshake = async {
        let mut stream: BoxedStream = match &config.tls {
            None => Box::new(tcp),
            Some(tls) => {
                // Verifying the server's certificate against this name proves that the
                // node answering is `peer_id`.
                let name = node_server_name(peer_id)
                    .map_err(|error| ConnectionError::Tls(std::io::Error::other(error)))?;
                let connecting = tls.connector().connect(name, tcp);
                let mut stream = connecting.await.map_err(ConnectionError::Tls)?;
                // rustls holds at most 64 KiB of records by default, so a coalesced batch
                // would be encrypted and written in several rounds; let it take one.
                let limit = config.coalesce_max_bytes.saturating_mul(2);
                stream.get_mut().1.set_buffer_limit(Some(limit));
                Box::new(stream)
            }
        };
        stream.write_all(&hello).await?;
        stream.flush().await?;
        let mut reply = [0; HELLO_BYTES];
        match stream.read_exact(&mut reply).await {
            Ok(_) => {}
            // Refusals are silent: the receiver just closes.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(HandshakeError::Refused.into());
            }
            Err(error) => return Err(error.into()),
        }
        Reply::decode_accepted(&reply, peer_id)?;
        Ok::<BoxedStream, ConnectionError>(stream)
    };
    timeout(config.handshake_timeout, handshake)
        .await
        .map_err(|_| ConnectionError::Timeout("handshake"))?
}
