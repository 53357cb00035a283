//! The interface of a replicated state machine.
//!
//! The core itself never calls it (it hands out committed entries as bytes); hosts do.
//! The `raft-host` engine drives it for every host built on it: `raft-runtime` runs the
//! engine's apply work on a thread that owns the state machine, and a simulator built on
//! the engine runs the very same apply work at virtual times, so a state machine tested
//! under simulation is driven exactly as it is in production.

use std::io::{Read, Write};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::Index;

/// A deterministic state machine replicated by Raft.
///
/// Rules a state machine must follow, because every replica must reach the same state:
/// `apply` depends only on the current state, the index and the command (no clock, no
/// randomness, no IO); a command it cannot carry out returns an error *response* (never a
/// panic, never a stall); `restore(snapshot(s))` gives back `s`.
pub trait StateMachine: Send + 'static {
    /// A client command, carried in the log (encoded with postcard by the host).
    type Command: Serialize + DeserializeOwned + Send + 'static;
    /// The answer to one command, returned to the proposing client.
    type Response: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// A read-only request, served by [`StateMachine::query`] once the read's index is
    /// applied (linearizable and lease reads) or at once (stale reads).
    type Query: Serialize + DeserializeOwned + Send + 'static;
    /// The answer to a query.
    type QueryResponse: Serialize + DeserializeOwned + Send + 'static;
    /// A point-in-time view that can be written out while `apply` goes on (for example a
    /// clone of a persistent map), so snapshotting never blocks the apply path.
    type Snapshot: Send + 'static;

    /// Decodes a command from its log bytes (postcard, as the host encodes it), sharing
    /// `bytes` instead of copying where that pays, for example a large value the state
    /// keeps. `None`, the default, lets the host decode with postcard; an override must
    /// return either exactly what postcard would decode or `None` (for anything it does not
    /// handle, including bytes postcard would refuse), so the applied command never depends
    /// on which decoder ran.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use raft_core::StateMachine;
    /// # use std::io::{Read, Write};
    /// # struct Counter(u64);
    /// impl raft_core::StateMachine for Counter {
    ///     type Command = u64;
    /// #   type Response = u64;
    /// #   type Query = ();
    /// #   type QueryResponse = u64;
    /// #   type Snapshot = u64;
    ///     // A one-byte postcard varint is the number itself; longer ones go to postcard.
    ///     fn decode_command(bytes: &Bytes) -> Option<u64> {
    ///         match bytes.first() {
    ///             Some(&byte) if byte < 0x80 => Some(u64::from(byte)),
    ///             _ => None,
    ///         }
    ///     }
    /// #   fn apply(&mut self, _: u64, add: u64) -> u64 { self.0 += add; self.0 }
    /// #   fn query(&self, _: &()) -> u64 { self.0 }
    /// #   fn snapshot(&self) -> u64 { self.0 }
    /// #   fn write_snapshot(s: u64, w: &mut dyn Write) -> std::io::Result<()> {
    /// #       w.write_all(&s.to_le_bytes())
    /// #   }
    /// #   fn restore(&mut self, r: &mut dyn Read) -> std::io::Result<()> {
    /// #       let mut b = [0; 8];
    /// #       r.read_exact(&mut b)?;
    /// #       self.0 = u64::from_le_bytes(b);
    /// #       Ok(())
    /// #   }
    /// }
    /// assert_eq!(Counter::decode_command(&Bytes::from_static(&[5])), Some(5));
    /// assert_eq!(Counter::decode_command(&Bytes::from_static(&[0x80, 1])), None);
    /// ```
    fn decode_command(bytes: &Bytes) -> Option<Self::Command> {
        let _ = bytes;
        None
    }

    /// Applies the committed command at log index `index`.
    fn apply(&mut self, index: Index, command: Self::Command) -> Self::Response;

    /// Answers a read-only query from the current state.
    fn query(&self, query: &Self::Query) -> Self::QueryResponse;

    /// Takes a point-in-time view of the state (cheap; the writing happens elsewhere).
    fn snapshot(&self) -> Self::Snapshot;

    /// Writes a view taken by [`StateMachine::snapshot`] as bytes.
    fn write_snapshot(snapshot: Self::Snapshot, writer: &mut dyn Write) -> std::io::Result<()>;

    /// Replaces the whole state with the snapshot read from `reader`. On error the state
    /// machine must be left as it was.
    fn restore(&mut self, reader: &mut dyn Read) -> std::io::Result<()>;
}
