//! The key-value store's own checks, beside linearizability: a write changes the state at
//! most once (sessions work), and every acknowledged write took effect at a committed index.

use std::collections::BTreeMap;

use raft_sim::Invariant;
use raft_sim::invariant::{Applied, Cluster};

use crate::machine::changed_state;
use crate::model::{KvInput, KvOutput};
use crate::workload::KvWorkload;

/// Exactly-once writes and durable acknowledgements.
///
/// * On every apply: a client's write (recognised by its command bytes) changes the store
///   at one log index only; a retry answered from the session changes nothing.
/// * At the end: every write acknowledged as having changed the store (a put, a successful
///   compare-and-set, a delete of an existing key) took effect at an index that is
///   committed.
#[derive(Debug, Default)]
pub struct WritesOnce {
    /// History index -> log index of the write's one state-changing apply.
    fresh_applies: BTreeMap<usize, u64>,
}

impl Invariant<KvWorkload> for WritesOnce {
    fn on_apply(&mut self, applied: &Applied<'_, KvWorkload>) -> Result<(), String> {
        if !changed_state(applied.response, applied.index) {
            return Ok(());
        }
        let Some(op) = applied.operation else {
            return Ok(());
        };
        let first = *self.fresh_applies.entry(op).or_insert(applied.index);
        if first != applied.index {
            return Err(format!(
                "write {} took effect twice, at index {first} and at index {}",
                applied.history[op], applied.index
            ));
        }
        Ok(())
    }

    fn at_end(&mut self, cluster: &Cluster<'_, KvWorkload>) -> Result<(), String> {
        for (i, op) in cluster.history().iter().enumerate() {
            let changed = matches!(
                (op.input.input, op.output),
                (KvInput::Put(_), Some(KvOutput::Put))
                    | (KvInput::Cas { .. }, Some(KvOutput::Cas { swapped: true }))
                    | (KvInput::Delete, Some(KvOutput::Delete { existed: true }))
            );
            if !changed {
                continue;
            }
            match self.fresh_applies.get(&i) {
                None => return Err(format!("acknowledged write {op} never took effect")),
                Some(&index) if cluster.committed_term(index).is_none() => {
                    return Err(format!(
                        "acknowledged write {op} applied at {index}, which is not committed"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
