//! The replicated state machine under test: the real `raft_kv::KvStateMachine`, plus the
//! translation between the simulator's abstract operations (keys and values are numbers)
//! and the store's commands, responses and queries.

use bytes::Bytes;
use raft_core::{Index, StateMachine};
use raft_kv::{Command, Condition, KvConfig, KvStateMachine, Op, Query, QueryResponse, Response};

use crate::linearizability::{Key, KvInput, KvOutput, Value};

/// The bytes of key `key`.
pub fn key_bytes(key: Key) -> Bytes {
    Bytes::from(format!("k{key}"))
}

fn value_bytes(value: Value) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes())
}

fn value_of(bytes: &[u8]) -> Option<Value> {
    Some(Value::from_be_bytes(bytes.try_into().ok()?))
}

/// Encodes a write as the log command the host proposes. `session` is (client id,
/// sequence). Reads are not commands and yield `None`.
pub fn encode_write(
    key: Key,
    input: KvInput,
    session: Option<(u64, u64)>,
    now_ms: u64,
) -> Option<Bytes> {
    let key = key_bytes(key);
    let op = match input {
        KvInput::Get => return None,
        KvInput::Put(value) => Op::Put {
            key,
            value: value_bytes(value),
            condition: Condition::Always,
        },
        KvInput::Delete => Op::Delete {
            key,
            condition: Condition::Always,
        },
        KvInput::Cas { expected, new } => Op::Put {
            key,
            value: value_bytes(new),
            condition: Condition::Value(value_bytes(expected)),
        },
    };
    let mut command = Command::new(op, now_ms);
    if let Some((client, sequence)) = session {
        command = command.with_session(client, sequence);
    }
    // Encoding a plain struct of byte strings into a Vec cannot fail.
    postcard::to_allocvec(&command).ok().map(Bytes::from)
}

/// What the client learns from a write's response; `None` when the response does not tell
/// whether the write happened (the outcome is then unknown).
pub fn write_output(input: KvInput, response: &Response) -> Option<KvOutput> {
    match (input, response) {
        (KvInput::Put(_), Response::Put { .. }) => Some(KvOutput::Put),
        (KvInput::Delete, Response::Delete { previous, .. }) => Some(KvOutput::Delete {
            existed: previous.is_some(),
        }),
        (KvInput::Cas { .. }, Response::Put { .. }) => Some(KvOutput::Cas { swapped: true }),
        (KvInput::Cas { .. }, Response::ConditionFailed { .. }) => {
            Some(KvOutput::Cas { swapped: false })
        }
        _ => None,
    }
}

/// True when applying the command at `index` changed the store (not a duplicate, not a
/// failed condition): the revision a mutation reports is its own index.
pub fn changed_state(response: &Response, index: Index) -> bool {
    match response {
        Response::Put { revision, .. } => *revision == index,
        Response::Delete { revision, previous } => previous.is_some() && *revision == index,
        Response::ConditionFailed { .. } | Response::Rejected(_) => false,
    }
}

/// The query that reads one key.
pub fn get_query(key: Key) -> Query {
    Query::Get {
        key: key_bytes(key),
    }
}

/// The value a read's answer carries.
pub fn read_output(response: &QueryResponse) -> Option<Value> {
    match response {
        QueryResponse::Get(get) => get.entry.as_ref().and_then(|kv| value_of(&kv.value)),
        QueryResponse::Range(_) | QueryResponse::Changes(_) => None,
    }
}

/// One replica's state machine.
#[derive(Debug, Clone)]
pub struct Replica {
    machine: KvStateMachine,
}

impl Default for Replica {
    fn default() -> Self {
        Self::new()
    }
}

impl Replica {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        // The default configuration is valid by construction (checked by raft-kv's tests);
        // fall back to nothing else.
        let machine = KvStateMachine::new(KvConfig::default())
            .unwrap_or_else(|error| unreachable!("default KvConfig is valid: {error}"));
        Replica { machine }
    }

    /// Applies the command bytes at `index`. `None` when the bytes do not decode (the host
    /// never proposes such bytes, so this means a corrupted entry).
    pub fn apply(&mut self, index: Index, bytes: &[u8]) -> Option<Response> {
        let command: Command = postcard::from_bytes(bytes).ok()?;
        Some(self.machine.apply(index, command))
    }

    /// Reads one key.
    pub fn get(&self, key: Key) -> Option<Value> {
        match self.machine.query(&Query::Get {
            key: key_bytes(key),
        }) {
            QueryResponse::Get(get) => get.entry.and_then(|kv| value_of(&kv.value)),
            QueryResponse::Range(_) | QueryResponse::Changes(_) => None,
        }
    }

    /// The store's bytes, for a snapshot.
    pub fn snapshot_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = KvStateMachine::write_snapshot(self.machine.snapshot(), &mut out);
        Bytes::from(out)
    }

    /// Replaces the store with a snapshot's bytes; empty bytes mean the empty store.
    pub fn restore(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            *self = Replica::new();
            return Ok(());
        }
        let mut reader = bytes;
        self.machine.restore(&mut reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_round_trip_through_the_real_store() {
        let mut replica = Replica::new();
        let put = encode_write(1, KvInput::Put(7), Some((1, 1)), 0).expect("write");
        let response = replica.apply(1, &put).expect("decodes");
        assert_eq!(
            write_output(KvInput::Put(7), &response),
            Some(KvOutput::Put)
        );
        assert!(changed_state(&response, 1));
        assert_eq!(replica.get(1), Some(7));
        // A retry with the same session is answered from the session, not applied again.
        let again = replica.apply(2, &put).expect("decodes");
        assert!(!changed_state(&again, 2));
        let cas = KvInput::Cas {
            expected: 7,
            new: 8,
        };
        let bytes = encode_write(1, cas, Some((1, 2)), 0).expect("write");
        let response = replica.apply(3, &bytes).expect("decodes");
        assert_eq!(
            write_output(cas, &response),
            Some(KvOutput::Cas { swapped: true })
        );
        let bytes = encode_write(1, cas, Some((1, 3)), 0).expect("write");
        let response = replica.apply(4, &bytes).expect("decodes");
        assert_eq!(
            write_output(cas, &response),
            Some(KvOutput::Cas { swapped: false })
        );
        let snapshot = replica.snapshot_bytes();
        let mut other = Replica::new();
        other.restore(&snapshot).expect("restore");
        assert_eq!(other.get(1), Some(8));
        let delete = encode_write(1, KvInput::Delete, None, 0).expect("write");
        let response = other.apply(5, &delete).expect("decodes");
        assert_eq!(
            write_output(KvInput::Delete, &response),
            Some(KvOutput::Delete { existed: true })
        );
        assert_eq!(other.get(1), None);
    }
}
