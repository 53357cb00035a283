//! Settings of a [`crate::TcpTransport`]. Every queue, frame and wait has a named limit here.

use std::net::SocketAddr;
use std::time::Duration;

use raft_core::NodeId;

use crate::error::ConfigError;
use crate::tls::TlsConfig;

/// Configuration of one TCP endpoint.
///
/// Defaults are sized for a LAN cluster running raft-core's defaults: the largest frame
/// (16 MiB) holds a 4 MiB command (`max_entry_bytes`) with room to spare and sixteen 1 MiB
/// snapshot chunks; the ordinary queue (1024 messages) absorbs a full append window
/// (`max_inflight_appends` = 64) many times over; the inbound queue holds at most 64 MiB,
/// several append windows (`max_inflight_bytes` = 8 MiB) per peer; reconnects start at 50 ms and back off to
/// 2 s so a dead peer costs at most one connection attempt every couple of seconds.
///
/// Inbound connections are bounded three ways: a stranger must finish its handshake within
/// `handshake_timeout` (3 s: a TLS handshake on a loaded LAN takes milliseconds); at most
/// 64 handshakes may be pending (8 per remote IP), and a newcomer over either limit
/// evicts the *oldest* pending one, so idle strangers cannot hold slots against real
/// peers, who finish in milliseconds; and at most 256 inbound connections exist at once,
/// which leaves file descriptors for everything else. Keepalive probes an idle peer
/// connection after 10 s, every 2 s, so a peer that vanished without closing (power loss,
/// partition) is noticed in about 16 s even on a lane that carries nothing.
///
/// Without [`TcpConfig::with_tls`] the transport runs in plaintext: anyone who can reach
/// the port and knows the cluster id and a node id can speak for that node. Use it only
/// for tests and experiments.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// This node's id; never 0.
    pub node_id: NodeId,
    /// Cluster identity. A peer that presents a different id is refused, so two clusters
    /// that share hosts cannot talk to each other by mistake.
    pub cluster_id: u64,
    /// Where to accept peer connections. Port 0 picks a free port; see
    /// [`crate::TcpTransport::local_addr`].
    pub listen_addr: SocketAddr,
    /// Largest frame body accepted or sent, in bytes. Checked before any buffer is grown,
    /// on both the encoding and the decoding side. Larger: bigger appends and snapshot
    /// chunks fit; smaller: less memory a misbehaving peer can make this node hold.
    pub max_frame_bytes: u32,
    /// Messages queued per peer for the ordinary lane (votes, appends, heartbeats) before
    /// new ones are dropped and counted. Larger: rides out longer stalls; smaller: less
    /// stale traffic after a stall and less memory per slow peer.
    pub queue_capacity_messages: usize,
    /// Messages queued per peer for the snapshot lane. Raft-core sends one chunk at a time,
    /// so a few slots suffice.
    pub snapshot_queue_capacity_messages: usize,
    /// Messages received from all peers and not yet taken by the node before readers stop
    /// reading (TCP backpressure; nothing is dropped on the receiving side).
    pub inbound_queue_capacity_messages: usize,
    /// Bytes (as framed on the wire) received and not yet taken by the node before readers
    /// stop reading. Bounds the memory a node that falls behind can accumulate, whatever the
    /// frame sizes; a single frame larger than this still passes when the queue is empty.
    pub inbound_queue_max_bytes: u64,
    /// Most bytes gathered into one socket write. Queued messages are coalesced up to this
    /// size so a burst costs few system calls; one message larger than it still goes alone.
    /// The 256 KiB default was measured (`benches/throughput.rs`): with 64 KiB messages on
    /// loopback both 64 KiB and 1 MiB limits gave about half its throughput.
    pub coalesce_max_bytes: usize,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one coalesced write may take before the connection is deemed broken.
    pub write_timeout: Duration,
    /// How long a new connection may take to complete its handshake (TLS included), on
    /// both sides. Shorter: strangers hold slots for less time; longer: tolerates slower
    /// networks.
    pub handshake_timeout: Duration,
    /// First reconnect delay after a failure; doubled per failure up to `backoff_max`.
    /// Each delay is jittered to between half and all of its value, so that peers which
    /// lost a node at the same moment do not retry in lockstep.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Inbound connections that may be in their handshake at once. A newcomer beyond it
    /// closes the oldest pending one, so idle strangers cannot keep real peers out.
    pub max_pending_handshakes: usize,
    /// Pending handshakes from one remote IP address; a newcomer beyond it closes the
    /// oldest pending one from the same address, so one host cannot fill the global limit.
    pub max_pending_handshakes_per_ip: usize,
    /// Inbound connections open at once, pending or established. When full, a newcomer
    /// closes the oldest pending handshake; if none is pending it is refused. Bounds the
    /// file descriptors the Raft port can take.
    pub max_inbound_connections: usize,
    /// Idle time on a peer connection before TCP keepalive probes start.
    pub keepalive_time: Duration,
    /// Time between keepalive probes; after three unanswered probes the kernel closes the
    /// connection.
    pub keepalive_interval: Duration,
    /// How long [`crate::Transport::shutdown`] waits for queued messages to be written.
    pub shutdown_timeout: Duration,
    /// Mutual TLS between peers, or `None` for plaintext (insecure). Set with
    /// [`TcpConfig::with_tls`].
    pub tls: Option<TlsConfig>,
}

impl TcpConfig {
    /// A configuration with the defaults described on [`TcpConfig`].
    pub fn new(node_id: NodeId, cluster_id: u64, listen_addr: SocketAddr) -> Self {
        TcpConfig {
            node_id,
            cluster_id,
            listen_addr,
            max_frame_bytes: 16 << 20,
            queue_capacity_messages: 1024,
            snapshot_queue_capacity_messages: 8,
            inbound_queue_capacity_messages: 4096,
            inbound_queue_max_bytes: 64 << 20,
            coalesce_max_bytes: 256 << 10,
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_pending_handshakes: 64,
            max_pending_handshakes_per_ip: 8,
            max_inbound_connections: 256,
            keepalive_time: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(1),
            tls: None,
        }
    }

    /// Secures every peer connection (both lanes, both directions) with mutual TLS: this
    /// node presents the certificate in `tls` and accepts only peers whose certificate is
    /// issued by the same CA and names the node id they claim. Without it the transport
    /// runs in plaintext.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the configuration; [`crate::TcpTransport::bind`] calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::ZeroNodeId);
        }
        let counts = [
            ("max_frame_bytes", self.max_frame_bytes as usize),
            ("queue_capacity_messages", self.queue_capacity_messages),
            (
                "snapshot_queue_capacity_messages",
                self.snapshot_queue_capacity_messages,
            ),
            (
                "inbound_queue_capacity_messages",
                self.inbound_queue_capacity_messages,
            ),
            ("coalesce_max_bytes", self.coalesce_max_bytes),
            (
                "inbound_queue_max_bytes",
                usize::try_from(self.inbound_queue_max_bytes).unwrap_or(usize::MAX),
            ),
            ("max_pending_handshakes", self.max_pending_handshakes),
            (
                "max_pending_handshakes_per_ip",
                self.max_pending_handshakes_per_ip,
            ),
            ("max_inbound_connections", self.max_inbound_connections),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero { field });
        }
        let waits = [
            ("connect_timeout", self.connect_timeout),
            ("write_timeout", self.write_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("backoff_min", self.backoff_min),
            ("keepalive_time", self.keepalive_time),
            ("keepalive_interval", self.keepalive_interval),
        ];
        if let Some((field, _)) = waits.iter().find(|(_, value)| value.is_zero()) {
            return Err(ConfigError::Zero { field });
        }
        if self.backoff_max < self.backoff_min {
            return Err(ConfigError::BackoffRange);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TcpConfig {
        TcpConfig::new(1, 7, "127.0.0.1:0".parse().expect("literal address"))
    }

    /// Goal: the defaults are usable and each kind of mistake names its field.
    #[test]
    fn validate_names_the_field_to_fix() {
        assert_eq!(config().validate(), Ok(()));
        let mut zero_id = config();
        zero_id.node_id = 0;
        assert_eq!(zero_id.validate(), Err(ConfigError::ZeroNodeId));
        let mut no_queue = config();
        no_queue.queue_capacity_messages = 0;
        assert_eq!(
            no_queue.validate(),
            Err(ConfigError::Zero {
                field: "queue_capacity_messages"
            })
        );
        let mut no_timeout = config();
        no_timeout.write_timeout = Duration::ZERO;
        assert_eq!(
            no_timeout.validate(),
            Err(ConfigError::Zero {
                field: "write_timeout"
            })
        );
        let mut inverted = config();
        inverted.backoff_max = Duration::from_millis(1);
        assert_eq!(inverted.validate(), Err(ConfigError::BackoffRange));
    }
}
