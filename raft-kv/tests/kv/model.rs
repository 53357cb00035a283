//! Model-based property tests: random command sequences, with retries, stale and gapped
//! sequences and session expiry, run against the state machine and a naive reference model
//! built on a `BTreeMap` with linear scans. Every response, every read and the snapshot round
//! trip must agree.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use raft_core::StateMachine;
use raft_kv::{
    Command, CommandError, Condition, KeyRevision, KvConfig, KvStateMachine, Op, Response,
};

use crate::support::range;

const TTL_MS: u64 = 500;
const SESSIONS_MAX: u64 = 3;
const KEY_BYTES_MAX: u64 = 4;
const VALUE_BYTES_MAX: u64 = 3;

fn config() -> KvConfig {
    KvConfig {
        key_bytes_max: KEY_BYTES_MAX,
        value_bytes_max: VALUE_BYTES_MAX,
        session_ttl_ms: TTL_MS,
        sessions_max: SESSIONS_MAX,
        range_limit_max: 100,
        history_changes_max: 8,
        history_bytes_max: 1024,
    }
}

/// The reference: obviously correct, slow.
#[derive(Default)]
struct Model {
    entries: BTreeMap<Bytes, (Bytes, KeyRevision)>,
    revision: u64,
    clock_ms: u64,
    /// client -> (last sequence, response, last active ms)
    sessions: BTreeMap<u64, (u64, Response, u64)>,
}

impl Model {
    fn apply(&mut self, index: u64, command: &Command) -> Response {
        self.clock_ms = self.clock_ms.max(command.now_ms);
        let clock_ms = self.clock_ms;
        self.sessions
            .retain(|_, (_, _, active_ms)| clock_ms - *active_ms <= TTL_MS);
        let Some(request) = command.session else {
            return self.execute(index, &command.op);
        };
        let (client_id, sequence) = (request.client_id, request.sequence);
        if sequence == 0 {
            return Response::Rejected(CommandError::InvalidSequence { client_id });
        }
        match self.sessions.get_mut(&client_id) {
            None if sequence != 1 => {
                return Response::Rejected(CommandError::SessionUnknown {
                    client_id,
                    sequence,
                });
            }
            Some((last_sequence, response, active_ms)) if sequence <= *last_sequence => {
                if sequence < *last_sequence {
                    let last_sequence = *last_sequence;
                    let error = CommandError::StaleSequence {
                        client_id,
                        sequence,
                        last_sequence,
                    };
                    return Response::Rejected(error);
                }
                *active_ms = clock_ms;
                return response.clone();
            }
            _ => {}
        }
        let response = self.execute(index, &command.op);
        if !self.sessions.contains_key(&client_id) && self.sessions.len() as u64 >= SESSIONS_MAX {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(id, (_, _, active_ms))| (*active_ms, **id))
                .map(|(id, _)| *id);
            self.sessions
                .remove(&oldest.expect("the table is full, so not empty"));
        }
        self.sessions
            .insert(client_id, (sequence, response.clone(), clock_ms));
        response
    }

    fn execute(&mut self, index: u64, op: &Op) -> Response {
        let key = op.key().clone();
        if key.is_empty() {
            return Response::Rejected(CommandError::EmptyKey);
        }
        if key.len() as u64 > KEY_BYTES_MAX {
            let size_bytes = key.len() as u64;
            return Response::Rejected(CommandError::KeyTooLarge {
                size_bytes,
                max_bytes: KEY_BYTES_MAX,
            });
        }
        let mut value_bytes = if let Op::Put { value, .. } = op {
            value.len()
        } else {
            0
        };
        if let Condition::Value(expected) = op.condition() {
            value_bytes = value_bytes.max(expected.len());
        }
        if value_bytes as u64 > VALUE_BYTES_MAX {
            let size_bytes = value_bytes as u64;
            return Response::Rejected(CommandError::ValueTooLarge {
                size_bytes,
                max_bytes: VALUE_BYTES_MAX,
            });
        }
        let current = self.entries.get(&key).cloned();
        let holds = match op.condition() {
            Condition::Always => true,
            Condition::Absent => current.is_none(),
            Condition::ModRevision(expected) => {
                current.as_ref().map_or(0, |(_, meta)| meta.mod_revision) == *expected
            }
            Condition::Value(expected) => {
                current.as_ref().is_some_and(|(value, _)| value == expected)
            }
        };
        let previous = current.map(|(_, meta)| meta);
        if !holds {
            return Response::ConditionFailed {
                revision: self.revision,
                current: previous,
            };
        }
        match op {
            Op::Put { value, .. } => {
                let key_revision = KeyRevision {
                    create_revision: previous.map_or(index, |meta| meta.create_revision),
                    mod_revision: index,
                    version: previous.map_or(1, |meta| meta.version + 1),
                };
                self.entries.insert(key, (value.clone(), key_revision));
                self.revision = index;
                Response::Put {
                    revision: index,
                    key_revision,
                    previous,
                }
            }
            Op::Delete { .. } => {
                if self.entries.remove(&key).is_some() {
                    self.revision = index;
                }
                Response::Delete {
                    revision: self.revision,
                    previous,
                }
            }
        }
    }
}

/// How a step picks its session sequence, relative to the highest one the client issued.
#[derive(Debug, Clone)]
enum SequenceChoice {
    Next,
    Retry,
    Stale,
    Gap,
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    session: Option<(u64, SequenceChoice)>,
    advance_ms: u64,
    index_gap: u64,
}

fn bytes_of(max_len: usize) -> impl Strategy<Value = Bytes> {
    // Few distinct bytes so keys and values collide often; lengths reach past the limits.
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..=max_len)
        .prop_map(Bytes::from)
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        4 => Just(Condition::Always),
        1 => Just(Condition::Absent),
        1 => (0u64..40).prop_map(Condition::ModRevision),
        1 => bytes_of(4).prop_map(Condition::Value),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        3 => (bytes_of(5), bytes_of(4), condition())
            .prop_map(|(key, value, condition)| Op::Put { key, value, condition }),
        1 => (bytes_of(5), condition()).prop_map(|(key, condition)| Op::Delete { key, condition }),
    ];
    let choice = prop_oneof![
        4 => Just(SequenceChoice::Next),
        3 => Just(SequenceChoice::Retry),
        1 => Just(SequenceChoice::Stale),
        1 => Just(SequenceChoice::Gap),
    ];
    let session = proptest::option::weighted(0.7, (0u64..5, choice));
    (
        op,
        session,
        0u64..200,
        prop_oneof![4 => Just(1u64), 1 => Just(2u64)],
    )
        .prop_map(|(op, session, advance_ms, index_gap)| Step {
            op,
            session,
            advance_ms,
            index_gap,
        })
}

fn run(steps: &[Step]) -> (KvStateMachine, Model) {
    let mut kv = KvStateMachine::new(config()).expect("valid config");
    let mut model = Model::default();
    let mut issued: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut index, mut now_ms) = (0u64, 0u64);
    for step in steps {
        index += step.index_gap;
        now_ms += step.advance_ms;
        let mut command = Command::new(step.op.clone(), now_ms);
        if let Some((client_id, choice)) = &step.session {
            let last = issued.entry(*client_id).or_insert(0);
            let sequence = match choice {
                SequenceChoice::Next => *last + 1,
                SequenceChoice::Retry => *last,
                SequenceChoice::Stale => last.saturating_sub(1),
                SequenceChoice::Gap => *last + 2,
            };
            *last = (*last).max(sequence);
            command = command.with_session(*client_id, sequence);
        }
        let expected = model.apply(index, &command);
        let actual = kv.apply(index, command.clone());
        assert_eq!(actual, expected, "command {command:?} at index {index}");
    }
    (kv, model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..80)) {
        let (kv, model) = run(&steps);
        let listed = range(&kv, "", None, 100);
        let model_listed: Vec<(Bytes, Bytes, KeyRevision)> = model
            .entries
            .iter()
            .map(|(key, (value, meta))| (key.clone(), value.clone(), *meta))
            .collect();
        let kv_listed: Vec<(Bytes, Bytes, KeyRevision)> = listed
            .entries
            .iter()
            .map(|entry| (entry.key.clone(), entry.value.clone(), entry.key_revision))
            .collect();
        prop_assert_eq!(kv_listed, model_listed);
        prop_assert_eq!(kv.revision(), model.revision);
        prop_assert_eq!(kv.session_count(), model.sessions.len());
    }

    #[test]
    fn snapshots_round_trip_after_random_commands(
        steps in proptest::collection::vec(step(), 0..80),
        tail in proptest::collection::vec(step(), 0..10),
    ) {
        let (kv, _) = run(&steps);
        let mut bytes = Vec::new();
        KvStateMachine::write_snapshot(kv.snapshot(), &mut bytes).expect("Vec write");
        let mut restored = KvStateMachine::new(config()).expect("valid config");
        restored.restore(&mut bytes.as_slice()).expect("a fresh snapshot restores");
        prop_assert_eq!(&restored, &kv);
        // Both continue identically, sessions included.
        let (mut original, mut copy) = (kv, restored);
        let mut index = original.applied_index();
        for (offset, step) in (1..).zip(&tail) {
            index += 1;
            let now_ms = original.clock_ms() + offset * 100;
            let mut command = Command::new(step.op.clone(), now_ms);
            if let Some((client_id, _)) = step.session {
                command = command.with_session(client_id, 1);
            }
            prop_assert_eq!(original.apply(index, command.clone()), copy.apply(index, command));
        }
        prop_assert_eq!(original, copy);
    }
}
