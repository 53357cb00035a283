//! The HTTP API's JSON bodies, header names and encodings, shared by the server, the CLI
//! client, the load generator and the tests so both ends agree on one definition.
//!
//! Keys and values are byte strings. In URLs they are percent-encoded ([`encode_key`]); in
//! JSON they appear as UTF-8 strings when they are valid UTF-8 and as base64 in a sibling
//! `*_base64` field otherwise, so no byte is ever lost.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Header carrying a client session's id (a u64 in decimal), for exactly-once writes.
pub const HEADER_CLIENT_ID: &str = "client-id";
/// Header carrying the write's sequence number within the session (from 1).
pub const HEADER_SEQUENCE: &str = "sequence";
/// Header of a GET answer: the key's revision (its last change, `mod_revision`).
pub const HEADER_REVISION: &str = "revision";
/// Header of a GET answer: the revision that created the key.
pub const HEADER_CREATE_REVISION: &str = "create-revision";
/// Header of a GET answer: how many times the key was written since its creation.
pub const HEADER_VERSION: &str = "version";
/// Header of a GET answer: the store's global revision when the read was served.
pub const HEADER_STORE_REVISION: &str = "store-revision";
/// Marks a request one node forwarded to the leader, so it is never forwarded twice.
pub const HEADER_FORWARDED: &str = "x-raft-kv-forwarded";

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    /// Confirmed with the leader (ReadIndex): sees every write acknowledged before it.
    #[default]
    Linearizable,
    /// Served under the leader's lease without a round trip when it holds.
    Lease,
    /// Served from the local replica as is; may be behind.
    Stale,
}

impl ReadConsistency {
    /// The name used in query parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "linearizable",
            ReadConsistency::Lease => "lease",
            ReadConsistency::Stale => "stale",
        }
    }
}

impl FromStr for ReadConsistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linearizable" => Ok(ReadConsistency::Linearizable),
            "lease" => Ok(ReadConsistency::Lease),
            "stale" => Ok(ReadConsistency::Stale),
            other => Err(format!(
                "unknown consistency `{other}`; use linearizable, lease or stale"
            )),
        }
    }
}

impl fmt::Display for ReadConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Answer to a successful PUT or DELETE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBody {
    /// The store's revision after the write.
    pub revision: u64,
}

/// Where a node that is not the leader says the leader is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRef {
    /// The leader's node id.
    pub id: u64,
    /// Its HTTP API URL, when it registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A key's metadata, as reported with a failed condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// Revision of the key's last change.
    pub revision: u64,
    /// Revision that created the key.
    pub create_revision: u64,
    /// Writes since creation.
    pub version: u64,
}

impl From<crate::KeyRevision> for KeyMeta {
    fn from(k: crate::KeyRevision) -> Self {
        KeyMeta {
            revision: k.mod_revision,
            create_revision: k.create_revision,
            version: k.version,
        }
    }
}

/// Every error answer: `{"error": code, "message": text, "leader": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `condition_failed`, `not_leader`, `value_too_large`.
    pub error: String,
    /// What happened and what to do, for people.
    pub message: String,
    /// The leader, when the node knows it (`null` otherwise).
    pub leader: Option<LeaderRef>,
    /// With `condition_failed`: the key's current metadata (`null` when it is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<KeyMeta>,
    /// With `condition_failed`: the store's current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// For a write: `not_applied` (it certainly did not take effect; retrying is safe) or
    /// `unknown` (it may have taken effect: retry under the same client session, or read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// One key of a list answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The key as UTF-8, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key in base64, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// The value as UTF-8, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in base64, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Revision of the key's last change.
    pub revision: u64,
    /// Revision that created the key.
    pub create_revision: u64,
    /// Writes since creation.
    pub version: u64,
}

impl ListEntry {
    /// Builds an entry, choosing the UTF-8 or base64 field for each byte string.
    pub fn new(key: &[u8], value: &[u8], meta: KeyMeta) -> Self {
        let (key, key_base64) = text_or_base64(key);
        let (value, value_base64) = text_or_base64(value);
        ListEntry {
            key,
            key_base64,
            value,
            value_base64,
            revision: meta.revision,
            create_revision: meta.create_revision,
            version: meta.version,
        }
    }

    /// The key's bytes, whichever field carries them (`None` if the base64 is invalid).
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        bytes_of(self.key.as_deref(), self.key_base64.as_deref())
    }

    /// The value's bytes, whichever field carries them.
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        bytes_of(self.value.as_deref(), self.value_base64.as_deref())
    }
}

fn text_or_base64(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(base64_encode(bytes))),
    }
}

fn bytes_of(text: Option<&str>, base64: Option<&str>) -> Option<Vec<u8>> {
    match (text, base64) {
        (Some(text), _) => Some(text.as_bytes().to_vec()),
        (None, Some(encoded)) => base64_decode(encoded),
        (None, None) => None,
    }
}

/// Answer to `GET /v1/kv?prefix=...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBody {
    /// The store's revision when the read was served.
    pub revision: u64,
    /// Matching keys in key order.
    pub entries: Vec<ListEntry>,
    /// True when more keys match after the last one (ask again with `start_after`).
    pub more: bool,
}

/// The `kind` of a [`WatchEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchEventKind {
    /// The key was set to `value`.
    Put,
    /// The key was deleted.
    Delete,
    /// No change: every change through `revision` has been sent (sent first, and when the
    /// stream has been idle for a while). Resume from `revision + 1`.
    Progress,
    /// The stream ends: `error` says why; every change through `revision` was sent.
    Error,
}

/// One line of `GET /v1/watch`: newline-delimited JSON, one event per change, in revision
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub kind: WatchEventKind,
    /// The change's revision; for `progress` and `error`, the last revision covered.
    pub revision: u64,
    /// The key as UTF-8, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key in base64, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// A put's value as UTF-8, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A put's value in base64, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// With `error`: the machine-readable reason (`compacted`, `slow_watcher`,
    /// `shutting_down`, `unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `error`: what happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// With `error` `compacted`: the oldest revision a watch can start from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_revision: Option<u64>,
}

impl WatchEvent {
    /// The event for one applied change.
    pub fn change(change: &crate::Change) -> Self {
        let (key, key_base64) = text_or_base64(&change.key);
        let (kind, (value, value_base64)) = match &change.kind {
            crate::ChangeKind::Put { value } => (WatchEventKind::Put, text_or_base64(value)),
            crate::ChangeKind::Delete => (WatchEventKind::Delete, (None, None)),
        };
        WatchEvent {
            kind,
            revision: change.revision,
            key,
            key_base64,
            value,
            value_base64,
            ..WatchEvent::progress(change.revision)
        }
    }

    /// A progress event: everything through `revision` was sent.
    pub fn progress(revision: u64) -> Self {
        WatchEvent {
            kind: WatchEventKind::Progress,
            revision,
            key: None,
            key_base64: None,
            value: None,
            value_base64: None,
            error: None,
            message: None,
            oldest_revision: None,
        }
    }

    /// The last event of a stream that ends on `error` after sending through `revision`.
    pub fn error(revision: u64, error: &str, message: impl Into<String>) -> Self {
        WatchEvent {
            kind: WatchEventKind::Error,
            error: Some(error.to_string()),
            message: Some(message.into()),
            ..WatchEvent::progress(revision)
        }
    }

    /// The key's bytes, whichever field carries them.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        bytes_of(self.key.as_deref(), self.key_base64.as_deref())
    }

    /// The value's bytes, whichever field carries them.
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        bytes_of(self.value.as_deref(), self.value_base64.as_deref())
    }
}

/// The body of a `410 compacted` answer to `GET /v1/watch`: the error fields of every error
/// answer plus the oldest revision a watch can start from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedBody {
    /// Always `compacted`.
    pub error: String,
    /// What happened and what to do.
    pub message: String,
    /// Always `null` (kept so every error answer has the same fields).
    pub leader: Option<LeaderRef>,
    /// The oldest revision a watch can start from.
    pub oldest_revision: u64,
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBody {
    /// Node id.
    pub id: u64,
    /// `voter`, `learner` or `witness`; `voter (leaving)` while a joint change removes it.
    pub role: String,
    /// Its Raft peer address, if known.
    pub raft_addr: Option<String>,
    /// Its HTTP API URL, if it registered one.
    pub url: Option<String>,
}

/// Answer to `GET /v1/members` and to membership changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersBody {
    /// Every member, by id.
    pub members: Vec<MemberBody>,
    /// True while a joint-consensus change is in progress.
    pub joint: bool,
}

/// Role asked for in `POST /v1/members`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// A full voter (a learner is promoted; a new node catches up as a learner first).
    #[default]
    Voter,
    /// A non-voting replica.
    Learner,
    /// Votes, stores no payloads, never leads.
    Witness,
}

impl FromStr for MemberRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "voter" => Ok(MemberRole::Voter),
            "learner" => Ok(MemberRole::Learner),
            "witness" => Ok(MemberRole::Witness),
            other => Err(format!(
                "unknown role `{other}`; use voter, learner or witness"
            )),
        }
    }
}

/// Body of `POST /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    /// The new node's id.
    pub id: u64,
    /// Its Raft peer address (`host:port`); may be omitted when promoting a learner.
    #[serde(default)]
    pub raft_addr: Option<String>,
    /// Its HTTP API URL, handed out to clients as a redirect target.
    #[serde(default)]
    pub url: Option<String>,
    /// The role to give it.
    #[serde(default)]
    pub role: MemberRole,
}

/// Body of `POST /v1/leader/transfer` (may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The node to hand leadership to; the most up-to-date voter when absent.
    #[serde(default)]
    pub target: Option<u64>,
}

/// Answer to `POST /v1/leader/transfer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferResult {
    /// The new leader.
    pub leader: u64,
}

/// The leader's view of one peer's replication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressBody {
    /// Highest index known replicated on the peer.
    pub match_index: u64,
    /// Next index to send.
    pub next_index: u64,
    /// `probe`, `replicate` or `snapshot`.
    pub state: String,
    /// Heard from within the current check-quorum period.
    pub active: bool,
}

/// Answer to `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    /// This node's id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `precandidate`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<LeaderRef>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Index of the latest snapshot.
    pub snapshot_index: u64,
    /// Members with their roles and addresses.
    pub members: Vec<MemberBody>,
    /// Per-peer replication progress, keyed by node id (leader only; empty elsewhere).
    pub progress: BTreeMap<u64, ProgressBody>,
    /// `running`, `stopped` or `failed: <reason>`.
    pub lifecycle: String,
}

/// Percent-encodes a key for a URL path: every byte except unreserved characters.
pub fn encode_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0xf)])
}

/// Decodes a percent-encoded URL component into bytes; `None` on a malformed escape.
pub fn decode_percent(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    // The exact length of a well-formed decoding, so that `Bytes::from` the result takes
    // the buffer as it is instead of allocating a shared header for the spare capacity.
    let escapes = bytes.iter().filter(|b| **b == b'%').count();
    let mut out = Vec::with_capacity(bytes.len().saturating_sub(2 * escapes));
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = (*bytes.get(i + 1)? as char).to_digit(16)?;
            let lo = (*bytes.get(i + 2)? as char).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(BASE64_ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding; `None` when malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| {
        BASE64_ALPHABET
            .iter()
            .position(|&a| a == c)
            .map(|p| p as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index + 1 == bytes.len() / 4;
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - padding] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Goal: any key survives the URL encoding, and the encoding is a single path
        /// segment (no `/`, `?`, `#` or `%` left raw).
        #[test]
        fn key_encoding_round_trips(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            let encoded = encode_key(&key);
            prop_assert!(!encoded.contains(['/', '?', '#']));
            prop_assert_eq!(decode_percent(&encoded), Some(key));
        }

        /// Goal: base64 round-trips every byte string.
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }
    }

    /// Goal: known vectors (RFC 4648) and malformed input.
    #[test]
    fn base64_vectors() {
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_decode("Zm8="), Some(b"fo".to_vec()));
        assert_eq!(base64_decode("Zm8"), None);
        assert_eq!(base64_decode("Z=8="), None);
        assert_eq!(base64_decode("Zm!="), None);
    }

    /// Goal: a malformed escape is refused instead of passed through.
    #[test]
    fn malformed_percent_escapes_are_refused() {
        assert_eq!(decode_percent("a%2"), None);
        assert_eq!(decode_percent("a%zz"), None);
        assert_eq!(decode_percent("a%2Fb"), Some(b"a/b".to_vec()));
    }

    /// Goal: binary keys and values travel through JSON without loss.
    #[test]
    fn list_entry_keeps_binary_bytes() {
        let meta = KeyMeta {
            revision: 3,
            create_revision: 2,
            version: 1,
        };
        let entry = ListEntry::new(b"k", &[0xff, 0x00], meta);
        assert_eq!(entry.key.as_deref(), Some("k"));
        assert!(entry.value.is_none());
        let json = serde_json::to_string(&entry).unwrap();
        let back: ListEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.value_bytes(), Some(vec![0xff, 0x00]));
    }
}
