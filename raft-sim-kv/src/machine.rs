//! The replicated state machine under test, the real `raft_kv::KvStateMachine`: the
//! translation between the model's operations (keys and values are numbers) and the
//! store's commands, responses and queries.

use bytes::Bytes;
use raft_core::Index;
use raft_kv::{Command, Condition, KvConfig, KvStateMachine, Op, Query, QueryResponse, Response};

use crate::model::{Key, KvInput, KvOutput, Value};

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

/// The store command of a write. `session` is (client id, sequence). Reads are not
/// commands and yield `None`.
pub fn write_command(
    key: Key,
    input: KvInput,
    session: Option<(u64, u64)>,
    now_ms: u64,
) -> Option<Command> {
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
    Some(command)
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

/// A key-value store with the default limits, as every node of the simulation runs it.
pub fn new_store() -> KvStateMachine {
    // The default configuration is valid by construction (checked by raft-kv's tests).
    KvStateMachine::new(KvConfig::default())
        .unwrap_or_else(|error| unreachable!("default KvConfig is valid: {error}"))
}

/// The query that reads `key`.
pub fn get_query(key: Key) -> Query {
    Query::Get {
        key: key_bytes(key),
    }
}

/// What a client learns from the answer to [`get_query`].
pub fn read_output(response: &QueryResponse) -> Option<KvOutput> {
    match response {
        QueryResponse::Get(get) => Some(KvOutput::Get(
            get.entry.as_ref().and_then(|kv| value_of(&kv.value)),
        )),
        QueryResponse::Range(_) | QueryResponse::Changes(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::StateMachine;

    fn apply(
        store: &mut KvStateMachine,
        index: Index,
        key: Key,
        input: KvInput,
        session: Option<(u64, u64)>,
    ) -> Response {
        let command = write_command(key, input, session, 0).expect("a write");
        store.apply(index, command)
    }

    fn get(store: &KvStateMachine, key: Key) -> Option<Value> {
        match read_output(&store.query(&get_query(key))) {
            Some(KvOutput::Get(value)) => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_round_trip_through_the_real_store() {
        let mut store = new_store();
        let response = apply(&mut store, 1, 1, KvInput::Put(7), Some((1, 1)));
        assert_eq!(
            write_output(KvInput::Put(7), &response),
            Some(KvOutput::Put)
        );
        assert!(changed_state(&response, 1));
        assert_eq!(get(&store, 1), Some(7));
        // A retry with the same session is answered from the session, not applied again.
        let again = apply(&mut store, 2, 1, KvInput::Put(7), Some((1, 1)));
        assert!(!changed_state(&again, 2));
        let cas = KvInput::Cas {
            expected: 7,
            new: 8,
        };
        let response = apply(&mut store, 3, 1, cas, Some((1, 2)));
        assert_eq!(
            write_output(cas, &response),
            Some(KvOutput::Cas { swapped: true })
        );
        let response = apply(&mut store, 4, 1, cas, Some((1, 3)));
        assert_eq!(
            write_output(cas, &response),
            Some(KvOutput::Cas { swapped: false })
        );
        let mut snapshot = Vec::new();
        KvStateMachine::write_snapshot(store.snapshot(), &mut snapshot).expect("written");
        let mut other = new_store();
        other.restore(&mut snapshot.as_slice()).expect("restore");
        assert_eq!(get(&other, 1), Some(8));
        let response = apply(&mut other, 5, 1, KvInput::Delete, None);
        assert_eq!(
            write_output(KvInput::Delete, &response),
            Some(KvOutput::Delete { existed: true })
        );
        assert_eq!(get(&other, 1), None);
    }
}
