//! The key space: a persistent ordered map from key to value and revision metadata, plus the
//! global revision. Knows nothing about sessions or validation.

use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;

use crate::command::{Condition, KeyRevision, Op, Response};
use crate::query::{KeyValue, RangeResponse};
use crate::store_key::{KeyRef, StoreKey};

/// A stored value with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) value: Bytes,
    pub(crate) key_revision: KeyRevision,
}

/// The key space. Cloning is O(1) (structure is shared until written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Store {
    pub(crate) entries: OrdMap<StoreKey, Stored>,
    /// Revision of the last mutation (0 before any).
    pub(crate) revision: u64,
}

impl Store {
    /// Carries out a validated `op` as the command at log index `index`.
    pub(crate) fn execute(&mut self, index: u64, op: &Op) -> Response {
        let revision = self.revision;
        let refused = |current: Option<&Stored>| Response::ConditionFailed {
            revision,
            current: current.map(|stored| stored.key_revision),
        };
        match op {
            // An existing key is found and updated in place: one search of the map per
            // overwrite (a lookup then an insert was two, with every key comparison a
            // memcmp). The in-place update copies the path only while a snapshot view
            // shares it.
            Op::Put { key, value, .. } => match self.entries.get_mut(&KeyRef(key)) {
                Some(stored) if !condition_holds(op.condition(), Some(stored)) => {
                    refused(Some(stored))
                }
                Some(stored) => {
                    let previous = stored.key_revision;
                    stored.value = value.clone();
                    stored.key_revision = KeyRevision {
                        create_revision: previous.create_revision,
                        mod_revision: index,
                        version: previous.version + 1,
                    };
                    let key_revision = stored.key_revision;
                    self.revision = index;
                    Response::Put {
                        revision: index,
                        key_revision,
                        previous: Some(previous),
                    }
                }
                None if !condition_holds(op.condition(), None) => refused(None),
                None => self.insert_new(index, key, value),
            },
            Op::Delete { key, .. } => {
                let current = self.entries.get(&KeyRef(key));
                if !condition_holds(op.condition(), current) {
                    return refused(current);
                }
                self.delete(index, key)
            }
        }
    }

    fn insert_new(&mut self, index: u64, key: &Bytes, value: &Bytes) -> Response {
        let key_revision = KeyRevision {
            create_revision: index,
            mod_revision: index,
            version: 1,
        };
        self.entries.insert(
            StoreKey::new(key),
            Stored {
                value: value.clone(),
                key_revision,
            },
        );
        self.revision = index;
        Response::Put {
            revision: index,
            key_revision,
            previous: None,
        }
    }

    fn delete(&mut self, index: u64, key: &Bytes) -> Response {
        let previous = self
            .entries
            .remove(&KeyRef(key))
            .map(|stored| stored.key_revision);
        if previous.is_some() {
            self.revision = index;
        }
        Response::Delete {
            revision: self.revision,
            previous,
        }
    }

    pub(crate) fn get(&self, key: &Bytes) -> Option<KeyValue> {
        // The asked-for key is handed back: equal, and already `Bytes`.
        self.entries.get(&KeyRef(key)).map(|stored| KeyValue {
            key: key.clone(),
            value: stored.value.clone(),
            key_revision: stored.key_revision,
        })
    }

    /// Up to `limit` keys with `prefix`, strictly after `start_after` if given.
    pub(crate) fn range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> RangeResponse {
        // Start at the later of the prefix and the paging key.
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .entries
            .range::<_, [u8]>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.as_slice().starts_with(prefix));
        let entries: Vec<KeyValue> = matching
            .by_ref()
            .take(limit)
            .map(|(key, stored)| key_value(key, stored))
            .collect();
        let more = matching.next().is_some();
        RangeResponse {
            revision: self.revision,
            entries,
            more,
        }
    }
}

fn key_value(key: &StoreKey, stored: &Stored) -> KeyValue {
    KeyValue {
        key: key.to_bytes(),
        value: stored.value.clone(),
        key_revision: stored.key_revision,
    }
}

fn condition_holds(condition: &Condition, current: Option<&Stored>) -> bool {
    match condition {
        Condition::Always => true,
        Condition::Absent => current.is_none(),
        Condition::ModRevision(expected) => {
            current.map_or(0, |stored| stored.key_revision.mod_revision) == *expected
        }
        Condition::Value(expected) => current.is_some_and(|stored| stored.value == *expected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KvStateMachine;
    use crate::command::Command;
    use crate::query::{Query, QueryResponse};
    use crate::store_key::INLINE_KEY_BYTES;
    use raft_core::StateMachine;

    /// Goal: keys held inside the map's nodes (short) and on the heap (long) are found,
    /// listed in byte order and handed back exactly, whichever side of the limit they are.
    #[test]
    fn short_and_long_keys_list_and_get_exactly() {
        let prefix = "bench/3f9a01c2/";
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for length in [1, 8, 24, 25, 31, 32, 33, 40, 100] {
            for last in [0u8, b'5', 0xff] {
                let mut key = prefix.as_bytes().to_vec();
                key.resize(length.max(prefix.len()), b'0');
                key.push(last);
                keys.push(key);
            }
        }
        assert!(keys.iter().any(|key| key.len() == INLINE_KEY_BYTES));
        assert!(keys.iter().any(|key| key.len() == INLINE_KEY_BYTES + 1));
        let mut machine = KvStateMachine::default();
        // Written in reverse so the map, not the insertion order, does the sorting.
        for (index, key) in (1..).zip(keys.iter().rev()) {
            machine.apply(index, Command::put(key.clone(), key.clone(), index));
        }
        keys.sort();
        keys.dedup();
        let QueryResponse::Range(listed) = machine.query(&Query::Range {
            prefix: prefix.into(),
            start_after: None,
            limit: 1000,
        }) else {
            panic!("a range query is answered with a range");
        };
        let listed: Vec<Vec<u8>> = listed.entries.iter().map(|kv| kv.key.to_vec()).collect();
        assert_eq!(listed, keys);
        for key in &keys {
            let QueryResponse::Get(got) = machine.query(&Query::Get {
                key: Bytes::from(key.clone()),
            }) else {
                panic!("a get is answered with a get");
            };
            let entry = got.entry.expect("every written key is found");
            assert_eq!((&entry.key[..], &entry.value[..]), (&key[..], &key[..]));
        }
    }
}
