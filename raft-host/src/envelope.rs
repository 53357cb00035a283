//! What the host puts in the log and in snapshots around the application's own data.
//!
//! raft-core's membership knows node ids only; to reach a new member every node needs its
//! network address. The engine therefore carries an *address book* (node id -> [`PeerInfo`])
//! as replicated state: changes travel through the log as [`LogRecord::Peers`] entries, and
//! the book is saved in front of the state machine's bytes in every snapshot.
//!
//! Log command bytes: `postcard(LogRecord<Command, Address>)`.
//!
//! Snapshot bytes: `magic "RRTSNAP1" | u32 LE length | postcard(book) | state machine bytes`.
//! An empty snapshot (no bytes at all, as a witness receives) means "no state".

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use bytes::Bytes;
use raft_core::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How to reach one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo<A> {
    /// The peer (Raft transport) address.
    pub address: A,
    /// Where clients reach the node's application API (for example `http://10.0.0.2:8080`),
    /// handed out with `NotLeader` redirects; `None` if it has none.
    pub client_url: Option<String>,
}

impl<A> PeerInfo<A> {
    /// A peer reachable at `address`, without a client URL.
    pub fn new(address: A) -> Self {
        PeerInfo {
            address,
            client_url: None,
        }
    }

    /// The same peer with a client URL.
    #[must_use]
    pub fn with_client_url(mut self, url: impl Into<String>) -> Self {
        self.client_url = Some(url.into());
        self
    }
}

/// The replicated address book.
pub type AddressBook<A> = BTreeMap<NodeId, PeerInfo<A>>;

/// One application-level log entry, as the engine encodes it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LogRecord<C, A> {
    /// A state machine command.
    Command(C),
    /// Address book records to insert or replace.
    Peers(Vec<(NodeId, PeerInfo<A>)>),
}

/// Encodes a command without cloning it (serde serializes `&C` as `C`). The address type
/// does not appear in a command record's bytes, so none is named here.
/// The buffer is sized first (postcard's size pass copies nothing), so a large command is
/// written once instead of being copied again when the buffer grows past it.
pub(crate) fn encode_command<C: Serialize>(command: &C) -> Result<Vec<u8>, postcard::Error> {
    let record = LogRecord::<&C, ()>::Command(command);
    let bytes = Vec::with_capacity(postcard::experimental::serialized_size(&record)?);
    postcard::to_extend(&record, bytes)
}

/// Encodes address book records.
pub(crate) fn encode_peers<A: Serialize>(
    peers: Vec<(NodeId, PeerInfo<A>)>,
) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&LogRecord::<(), A>::Peers(peers))
}

/// The postcard variant tag of [`LogRecord::Command`]: a command record is this byte
/// followed by `postcard(command)`.
const COMMAND_TAG: u8 = 0;

/// The command's own bytes in a command record, shared with `record`; `None` for any
/// other record (those, and odd encodings, go through [`decode`]).
pub(crate) fn command_bytes(record: &Bytes) -> Option<Bytes> {
    (record.first() == Some(&COMMAND_TAG)).then(|| record.slice(1..))
}

/// Decodes a committed command entry.
pub(crate) fn decode<C: DeserializeOwned, A: DeserializeOwned>(
    bytes: &[u8],
) -> Result<LogRecord<C, A>, postcard::Error> {
    postcard::from_bytes(bytes)
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"RRTSNAP1";
/// Bounds the memory a corrupt length field can make a reader allocate.
const BOOK_BYTES_MAX: u32 = 64 << 20;

/// Writes the host's snapshot header (magic and address book).
pub(crate) fn write_snapshot_header<A: Serialize>(
    book: &AddressBook<A>,
    writer: &mut dyn Write,
) -> io::Result<()> {
    let bytes = postcard::to_stdvec(book).map_err(io::Error::other)?;
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|length| *length <= BOOK_BYTES_MAX)
        .ok_or_else(|| io::Error::other("address book too large for a snapshot"))?;
    writer.write_all(SNAPSHOT_MAGIC)?;
    writer.write_all(&length.to_le_bytes())?;
    writer.write_all(&bytes)
}

/// Reads the host's snapshot header. `Ok(None)` for an empty snapshot (no state: a
/// witness's); otherwise the book, with the reader left at the state machine's bytes.
pub(crate) fn read_snapshot_header<A: DeserializeOwned>(
    reader: &mut dyn Read,
) -> io::Result<Option<AddressBook<A>>> {
    let mut magic = [0u8; 8];
    let mut filled = 0;
    while filled < magic.len() {
        match reader.read(&mut magic[filled..])? {
            0 if filled == 0 => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated snapshot header",
                ));
            }
            n => filled += n,
        }
    }
    if &magic != SNAPSHOT_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a raft-runtime snapshot (bad magic)",
        ));
    }
    let mut length = [0u8; 4];
    reader.read_exact(&mut length)?;
    let length = u32::from_le_bytes(length);
    if length > BOOK_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("address book of {length} bytes exceeds {BOOK_BYTES_MAX}"),
        ));
    }
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes)?;
    let book =
        postcard::from_bytes(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some(book))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a command encoded by reference decodes as the owned record; garbage is an
    /// error, never a panic.
    #[test]
    fn command_round_trip_and_garbage() {
        let bytes = encode_command::<String>(&"hello".to_string()).unwrap();
        match decode::<String, u16>(&bytes).unwrap() {
            LogRecord::Command(c) => assert_eq!(c, "hello"),
            LogRecord::Peers(_) => panic!("decoded as peers"),
        }
        let peers = encode_peers(vec![(4, PeerInfo::new(7001u16).with_client_url("x"))]).unwrap();
        match decode::<String, u16>(&peers).unwrap() {
            LogRecord::Peers(list) => assert_eq!(list[0].1.client_url.as_deref(), Some("x")),
            LogRecord::Command(_) => panic!("decoded as command"),
        }
        assert!(decode::<String, u16>(&[9, 9, 9]).is_err());
        // What `command_bytes` cuts off is the tag, and what it leaves is the command.
        let cut = command_bytes(&Bytes::from(bytes.clone())).unwrap();
        assert_eq!(postcard::from_bytes::<String>(&cut).unwrap(), "hello");
        assert!(command_bytes(&Bytes::from(peers.clone())).is_none());
        assert!(decode::<String, u16>(&[]).is_err());
    }

    /// Goal: the header round-trips, leaves the reader at the payload, and rejects damage.
    #[test]
    fn snapshot_header_round_trip() {
        let mut book = AddressBook::new();
        book.insert(1, PeerInfo::new(7001u16));
        let mut bytes = Vec::new();
        write_snapshot_header(&book, &mut bytes).unwrap();
        bytes.extend_from_slice(b"payload");
        let mut reader = &bytes[..];
        let read: AddressBook<u16> = read_snapshot_header(&mut reader).unwrap().unwrap();
        assert_eq!(read, book);
        assert_eq!(reader, b"payload");

        let mut empty: &[u8] = &[];
        assert!(read_snapshot_header::<u16>(&mut empty).unwrap().is_none());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(read_snapshot_header::<u16>(&mut &bad[..]).is_err());
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_snapshot_header::<u16>(&mut &huge[..]).is_err());
        assert!(read_snapshot_header::<u16>(&mut &bytes[..5]).is_err());
    }
}
