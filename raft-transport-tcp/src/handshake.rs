//! The handshake that opens every connection, before any frame.
//!
//! The dialler sends a fixed-size hello; the receiver checks it and, if it accepts, answers
//! with a fixed-size reply; then the connection carries frames one way only (dialler to
//! receiver). A refused hello is answered by closing the connection, nothing more. With
//! TLS the hello and reply travel inside the TLS session, after both certificates were
//! verified.
//! Fixed sizes mean a stranger's bytes are judged after reading exactly
//! [`HELLO_BYTES`] bytes, with no length field to trust.
//!
//! ```text
//! hello:  magic "RAFT" | version u16 | lane u8   | 0u8 | cluster_id u64 | node_id u64
//! reply:  magic "RAFT" | version u16 | status u8 | 0u8 | cluster_id u64 | node_id u64
//! ```
//! All integers are big-endian. The reply names the receiver, so a dialler that reached the
//! wrong node (a stale address) finds out at once.

use raft_core::NodeId;

use crate::error::HandshakeError;

/// Identifies this protocol in the first four bytes of every connection.
pub const MAGIC: [u8; 4] = *b"RAFT";

/// The protocol version this build speaks. Bump it on any change to framing or message
/// encoding; peers refuse other versions rather than misread them.
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes of a hello and of a reply.
pub const HELLO_BYTES: usize = 24;

/// Which of a peer's two connections a hello opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// Votes, appends, heartbeats and every other small, latency-sensitive message.
    Ordinary,
    /// Snapshot chunks, so that a large transfer never delays the ordinary lane.
    Snapshot,
}

impl Lane {
    /// Both lanes, in a fixed order.
    pub const ALL: [Lane; 2] = [Lane::Ordinary, Lane::Snapshot];

    /// The lane a message travels on.
    pub fn of(message: &raft_core::Message) -> Lane {
        if message.is_snapshot_data() {
            Lane::Snapshot
        } else {
            Lane::Ordinary
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Ordinary => "ordinary",
            Lane::Snapshot => "snapshot",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            Lane::Ordinary => 0,
            Lane::Snapshot => 1,
        }
    }

    fn from_byte(byte: u8) -> Result<Lane, HandshakeError> {
        match byte {
            0 => Ok(Lane::Ordinary),
            1 => Ok(Lane::Snapshot),
            other => Err(HandshakeError::UnknownLane(other)),
        }
    }
}

/// What a dialler announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version.
    pub version: u16,
    /// The lane byte as sent (checked only once the version is known to match).
    pub lane_byte: u8,
    /// The dialler's cluster.
    pub cluster_id: u64,
    /// The dialler's node id.
    pub node_id: NodeId,
}

impl Hello {
    /// The hello this build sends for `lane`.
    pub fn new(lane: Lane, cluster_id: u64, node_id: NodeId) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            lane_byte: lane.to_byte(),
            cluster_id,
            node_id,
        }
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HELLO_BYTES] {
        encode_fields(self.version, self.lane_byte, self.cluster_id, self.node_id)
    }

    /// Parses the wire form; only the magic is checked here.
    pub fn decode(bytes: &[u8; HELLO_BYTES]) -> Result<Hello, HandshakeError> {
        let (version, lane_byte, cluster_id, node_id) = decode_fields(bytes)?;
        Ok(Hello {
            version,
            lane_byte,
            cluster_id,
            node_id,
        })
    }

    /// The receiver's checks, in the order that gives the most useful error: version (a
    /// newer peer may mean other things by the other fields), cluster, lane, then whether
    /// the sender is a known peer.
    pub fn validate(
        &self,
        cluster_id: u64,
        is_known_peer: impl Fn(NodeId) -> bool,
    ) -> Result<Lane, HandshakeError> {
        if self.version != PROTOCOL_VERSION {
            return Err(HandshakeError::UnsupportedVersion {
                got: self.version,
                supported: PROTOCOL_VERSION,
            });
        }
        if self.cluster_id != cluster_id {
            return Err(HandshakeError::WrongCluster {
                got: self.cluster_id,
                expected: cluster_id,
            });
        }
        let lane = Lane::from_byte(self.lane_byte)?;
        if !is_known_peer(self.node_id) {
            return Err(HandshakeError::UnknownNode(self.node_id));
        }
        Ok(lane)
    }
}

/// What a receiver answers when it accepts a hello. A refused hello gets no answer at all:
/// the connection is simply closed, so a stranger learns neither the cluster id nor which
/// node ids exist, nor why it was refused (the receiver's log says why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The receiver's cluster.
    pub cluster_id: u64,
    /// The receiver's node id.
    pub node_id: NodeId,
}

/// The status byte of an accepting reply (the only kind sent).
const ACCEPTED: u8 = 0;

impl Reply {
    /// The wire form.
    pub fn encode(&self) -> [u8; HELLO_BYTES] {
        encode_fields(PROTOCOL_VERSION, ACCEPTED, self.cluster_id, self.node_id)
    }

    /// Parses and checks a reply on the dialling side: it must accept, and come from the
    /// node we meant to reach.
    pub fn decode_accepted(
        bytes: &[u8; HELLO_BYTES],
        expected_node_id: NodeId,
    ) -> Result<(), HandshakeError> {
        let (_version, status, _cluster_id, node_id) = decode_fields(bytes)?;
        if status != ACCEPTED {
            return Err(HandshakeError::UnknownStatus(status));
        }
        if node_id != expected_node_id {
            return Err(HandshakeError::WrongPeer {
                expected: expected_node_id,
                got: node_id,
            });
        }
        Ok(())
    }
}

fn encode_fields(version: u16, byte: u8, cluster_id: u64, node_id: NodeId) -> [u8; HELLO_BYTES] {
    let mut bytes = [0; HELLO_BYTES];
    bytes[0..4].copy_from_slice(&MAGIC);
    bytes[4..6].copy_from_slice(&version.to_be_bytes());
    bytes[6] = byte;
    bytes[8..16].copy_from_slice(&cluster_id.to_be_bytes());
    bytes[16..24].copy_from_slice(&node_id.to_be_bytes());
    bytes
}

fn decode_fields(bytes: &[u8; HELLO_BYTES]) -> Result<(u16, u8, u64, NodeId), HandshakeError> {
    if bytes[0..4] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    let mut cluster = [0; 8];
    cluster.copy_from_slice(&bytes[8..16]);
    let mut node = [0; 8];
    node.copy_from_slice(&bytes[16..24]);
    Ok((
        version,
        bytes[6],
        u64::from_be_bytes(cluster),
        u64::from_be_bytes(node),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: u64 = 7;

    fn known(id: NodeId) -> bool {
        id == 2
    }

    /// Goal: a well-formed hello from a known peer is accepted on its lane.
    #[test]
    fn good_hello_round_trips_and_validates() {
        for lane in Lane::ALL {
            let hello = Hello::new(lane, CLUSTER, 2);
            let decoded = Hello::decode(&hello.encode()).expect("valid hello");
            assert_eq!(decoded, hello);
            assert_eq!(decoded.validate(CLUSTER, known), Ok(lane));
        }
    }

    /// Goal: each kind of bad hello gets its own error (for the receiver's log).
    #[test]
    fn bad_hellos_are_refused_with_reasons() {
        let mut bad_magic = Hello::new(Lane::Ordinary, CLUSTER, 2).encode();
        bad_magic[0] = b'X';
        assert_eq!(Hello::decode(&bad_magic), Err(HandshakeError::BadMagic));

        let mut old = Hello::new(Lane::Ordinary, CLUSTER, 2);
        old.version = 0;
        assert!(matches!(
            old.validate(CLUSTER, known),
            Err(HandshakeError::UnsupportedVersion { got: 0, .. })
        ));
        let other_cluster = Hello::new(Lane::Ordinary, 8, 2).validate(CLUSTER, known);
        assert!(matches!(
            other_cluster,
            Err(HandshakeError::WrongCluster { got: 8, .. })
        ));
        let stranger = Hello::new(Lane::Ordinary, CLUSTER, 3).validate(CLUSTER, known);
        assert_eq!(stranger, Err(HandshakeError::UnknownNode(3)));

        let mut odd_lane = Hello::new(Lane::Ordinary, CLUSTER, 2);
        odd_lane.lane_byte = 9;
        assert_eq!(
            odd_lane.validate(CLUSTER, known),
            Err(HandshakeError::UnknownLane(9))
        );
    }

    /// Goal: the dialler notices when the address it used leads to another node.
    #[test]
    fn reply_from_wrong_node_is_refused() {
        let reply = Reply {
            cluster_id: CLUSTER,
            node_id: 5,
        };
        assert_eq!(Reply::decode_accepted(&reply.encode(), 5), Ok(()));
        assert_eq!(
            Reply::decode_accepted(&reply.encode(), 4),
            Err(HandshakeError::WrongPeer {
                expected: 4,
                got: 5
            })
        );
    }
}
