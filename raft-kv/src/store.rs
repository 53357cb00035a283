//! The key space: a persistent ordered map from key to value and revision metadata, plus the
//! global revision. Knows nothing about sessions or validation.

use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;

use crate::command::{Condition, KeyRevision, Op, Response};
use crate::query::{KeyValue, RangeResponse};

/// A stored value with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) value: Bytes,
    pub(crate) key_revision: KeyRevision,
}

/// The key space. Cloning is O(1) (structure is shared until written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Store {
    pub(crate) entries: OrdMap<Bytes, Stored>,
    /// Revision of the last mutation (0 before any).
    pub(crate) revision: u64,
}

impl Store {
    /// Carries out a validated `op` as the command at log index `index`.
    pub(crate) fn execute(&mut self, index: u64, op: &Op) -> Response {
        let current = self.entries.get(op.key());
        if !condition_holds(op.condition(), current) {
            return Response::ConditionFailed {
                revision: self.revision,
                current: current.map(|stored| stored.key_revision),
            };
        }
        // The lookup above serves the put too: one search of the map fewer per write.
        let previous = current.map(|stored| stored.key_revision);
        match op {
            Op::Put { key, value, .. } => self.put(index, key, value, previous),
            Op::Delete { key, .. } => self.delete(index, key),
        }
    }

    fn put(
        &mut self,
        index: u64,
        key: &Bytes,
        value: &Bytes,
        previous: Option<KeyRevision>,
    ) -> Response {
        let key_revision = match previous {
            Some(before) => KeyRevision {
                create_revision: before.create_revision,
                mod_revision: index,
                version: before.version + 1,
            },
            None => KeyRevision {
                create_revision: index,
                mod_revision: index,
                version: 1,
            },
        };
        self.entries.insert(
            key.clone(),
            Stored {
                value: value.clone(),
                key_revision,
            },
        );
        self.revision = index;
        Response::Put {
            revision: index,
            key_revision,
            previous,
        }
    }

    fn delete(&mut self, index: u64, key: &Bytes) -> Response {
        let previous = self.entries.remove(key).map(|stored| stored.key_revision);
        if previous.is_some() {
            self.revision = index;
        }
        Response::Delete {
            revision: self.revision,
            previous,
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.entries
            .get_key_value(key)
            .map(|(key, stored)| key_value(key, stored))
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
            .take_while(|(key, _)| key.starts_with(prefix));
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

fn key_value(key: &Bytes, stored: &Stored) -> KeyValue {
    KeyValue {
        key: key.clone(),
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
