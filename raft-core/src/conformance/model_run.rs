//! The operation-sequence checker: runs [`Op`]s on a store and on the [`MemStorage`]
//! model side by side and compares everything observable after each.

use std::fmt;

use super::harness::Harness;
use super::ops::Op;
use super::samples::{meta, sample_bytes, sample_entry};
use super::support::{self, Context, all_entries, fresh, read_snapshot, write_snapshot};
use crate::storage::MemState;
use crate::storage::Storage;
use crate::storage::{MemStorage, MemStorageError};
use crate::types::{Entry, HardState, RestoredState, SnapshotMeta};

/// Runs `ops` on a new store from `harness` and on a [`MemStorage`] model, comparing the
/// outcome of every call (success or error) and everything observable after every step:
/// bounds, terms, entries, snapshot metadata and bytes. After [`Op::Reopen`] the store must
/// show a state the model passed through since its last sync (see the module docs).
pub fn check_ops<H: Harness>(harness: &mut H, ops: &[Op]) -> Result<(), String> {
    let mut store = fresh(harness)?;
    let mut run = ModelRun::new();
    for (step, op) in ops.iter().enumerate() {
        let outcome = if *op == Op::Reopen {
            match support::reopen(harness, store) {
                Ok((reopened, restored)) => {
                    store = reopened;
                    run.follow_reopen(&restored)
                }
                Err(e) => return Err(format!("step {step} ({op:?}): {e}")),
            }
        } else {
            run.apply(&mut store, op)
        };
        outcome
            .and_then(|()| compare(&store, &run.model))
            .map_err(|e| format!("step {step} ({op:?}): {e}"))?;
    }
    Ok(())
}

/// The model and the states it passed through since its last sync.
pub(super) struct ModelRun {
    pub(super) model: MemStorage,
    history: Vec<MemState>,
}

/// Both stores must agree on success; returns whether the call succeeded.
fn agree<T, E1: fmt::Display, E2: fmt::Display>(
    what: &str,
    store: Result<T, E1>,
    model: Result<T, E2>,
) -> Result<bool, String> {
    match (store, model) {
        (Ok(_), Ok(_)) => Ok(true),
        (Err(_), Err(_)) => Ok(false),
        (Ok(_), Err(e)) => Err(format!(
            "{what}: the store accepted what the model rejects ({e})"
        )),
        (Err(e), Ok(_)) => Err(format!(
            "{what}: the store failed where the model succeeds: {e}"
        )),
    }
}

impl ModelRun {
    pub(super) fn new() -> Self {
        let mut model = MemStorage::new();
        // A new model restores nothing; the call puts it in the same state as the store.
        let _ = model.restore();
        let history = vec![model.volatile_state().clone()];
        ModelRun { model, history }
    }

    fn mark_durable(&mut self) {
        self.history = vec![self.model.volatile_state().clone()];
    }

    fn remember(&mut self) {
        self.history.push(self.model.volatile_state().clone());
    }

    pub(super) fn apply<S: Storage>(&mut self, store: &mut S, op: &Op) -> Result<(), String> {
        let m = &self.model;
        let (first, last, snapshot) = (m.first_index(), m.last_index(), m.snapshot_meta());
        let last_term = m.term(last).ok().flatten().unwrap_or(0);
        match *op {
            Op::Append {
                count,
                term_step,
                payload_bytes,
            } => {
                let term = last_term + u64::from(term_step);
                let entries: Vec<Entry> = (0..u64::from(count.max(1)))
                    .map(|i| sample_entry(last + 1 + i, term, usize::from(payload_bytes)))
                    .collect();
                self.append(store, &entries)
            }
            Op::AppendGap => self.append(store, &[sample_entry(last + 2, last_term, 8)]),
            Op::AppendOverlap => self.append(store, &[sample_entry(last, last_term, 8)]),
            Op::TruncateSuffix { count } => {
                let from = (last + 1).saturating_sub(u64::from(count)).max(first);
                self.simple("truncate_suffix", store.truncate_suffix(from), |m| {
                    m.truncate_suffix(from)
                })
            }
            Op::TruncateBelowFirst => {
                self.simple("truncate_suffix", store.truncate_suffix(first - 1), |m| {
                    m.truncate_suffix(first - 1)
                })
            }
            Op::SaveHardState { term_step, vote } => {
                let current = self.model.hard_state();
                let hard_state = HardState {
                    term: current.term + u64::from(term_step),
                    vote,
                    commit: current.commit.max(first - 1),
                };
                self.simple("save_hard_state", store.save_hard_state(&hard_state), |m| {
                    m.save_hard_state(&hard_state)
                })
            }
            Op::Sync => {
                let ok = agree("sync", store.sync(), self.model.sync())?;
                if ok {
                    self.mark_durable();
                }
                Ok(())
            }
            Op::LocalSnapshot { back, data_bytes } => {
                let index = last
                    .saturating_sub(u64::from(back))
                    .max(first - 1)
                    .max(snapshot.index);
                let term = self.model.term(index).ok().flatten().unwrap_or(0);
                self.snapshot(store, &meta(index, term), data_bytes, false)
            }
            Op::LeaderSnapshot {
                offset,
                conflicting,
                data_bytes,
            } => {
                let wanted = (last as i64).saturating_add(i64::from(offset)).max(0) as u64;
                let index = wanted.max(snapshot.index + 1);
                let local = self.model.term(index).ok().flatten();
                let term = match (local, conflicting) {
                    (Some(t), false) => t,
                    _ => last_term + 1,
                };
                self.snapshot(store, &meta(index, term), data_bytes, true)
            }
            Op::StaleSnapshot => {
                if snapshot.index == 0 {
                    return Ok(());
                }
                self.snapshot(store, &meta(snapshot.index - 1, 1), 16, false)
            }
            Op::AbandonSnapshot { data_bytes } => {
                let data = sample_bytes(last, usize::from(data_bytes));
                drop(write_snapshot(store, &meta(last, last_term), &data)?);
                drop(write_snapshot(
                    &mut self.model,
                    &meta(last, last_term),
                    &data,
                )?);
                Ok(())
            }
            Op::Compact { back } => {
                let through = snapshot.index.saturating_sub(u64::from(back));
                self.simple("compact", store.compact(through), |m| m.compact(through))
            }
            Op::CompactBeyondSnapshot => {
                let through = snapshot.index + 1;
                self.simple("compact", store.compact(through), |m| m.compact(through))
            }
            Op::Restore => {
                let got = store.restore().ctx("restore")?;
                let want = self.model.restore().ctx("model restore")?;
                self.remember();
                ensure_eq!(got, want, "restored state");
                Ok(())
            }
            Op::Reopen => Err("Reopen is handled by check_ops".to_string()),
        }
    }

    fn simple<E: fmt::Display>(
        &mut self,
        what: &str,
        store_result: Result<(), E>,
        on_model: impl FnOnce(&mut MemStorage) -> Result<(), MemStorageError>,
    ) -> Result<(), String> {
        if agree(what, store_result, on_model(&mut self.model))? {
            self.remember();
        }
        Ok(())
    }

    fn append<S: Storage>(&mut self, store: &mut S, entries: &[Entry]) -> Result<(), String> {
        // A crash may cut an append after any entry: remember each intermediate state.
        let mut partial = self.model.volatile_state().clone();
        let mut states = Vec::new();
        for entry in entries {
            if partial.append(std::slice::from_ref(entry)).is_err() {
                break;
            }
            states.push(partial.clone());
        }
        if agree("append", store.append(entries), self.model.append(entries))? {
            self.history.extend(states);
        }
        Ok(())
    }

    fn snapshot<S: Storage>(
        &mut self,
        store: &mut S,
        meta: &SnapshotMeta,
        data_bytes: u16,
        from_leader: bool,
    ) -> Result<(), String> {
        let data = sample_bytes(meta.index, usize::from(data_bytes));
        let store_writer = write_snapshot(store, meta, &data)?;
        let model_writer = write_snapshot(&mut self.model, meta, &data)?;
        let ok = agree(
            "commit_snapshot",
            store.commit_snapshot(store_writer),
            self.model.commit_snapshot(model_writer),
        )?;
        if !ok {
            return Ok(());
        }
        self.mark_durable();
        if from_leader {
            let ok = agree(
                "install_snapshot_log",
                store.install_snapshot_log(meta),
                self.model.install_snapshot_log(meta),
            )?;
            if ok {
                self.remember();
            }
        }
        Ok(())
    }

    /// After a reopen, finds the state the store restored among those the model passed
    /// through since its last sync, and continues the model from it.
    pub(super) fn follow_reopen(&mut self, restored: &RestoredState) -> Result<(), String> {
        let found = self.history.iter().find(|state| {
            let mut candidate = (*state).clone();
            candidate.normalize();
            candidate.restored() == *restored
        });
        let Some(state) = found else {
            let synced = self.history[0].clone().restored_normalized();
            return Err(format!(
                "after reopen the store restored a state the model never passed through \
                 since its last sync.\n  restored: {}\n  last synced: {}",
                describe(restored),
                describe(&synced)
            ));
        };
        self.model = MemStorage::from_durable(state.clone());
        let _ = self.model.restore();
        self.mark_durable();
        Ok(())
    }
}

fn describe(state: &RestoredState) -> String {
    let first = state.entries.first().map(|e| e.index);
    let last = state.entries.last().map(|e| e.index);
    format!(
        "{:?}, snapshot ({}, {}), entries {:?}..={:?}",
        state.hard_state, state.snapshot.index, state.snapshot.term, first, last
    )
}

/// Compares everything observable through the trait.
pub(super) fn compare<S: Storage>(store: &S, model: &MemStorage) -> Result<(), String> {
    let (first, last) = (model.first_index(), model.last_index());
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (first, last),
        "(first, last)"
    );
    ensure_eq!(
        store.snapshot_meta(),
        model.snapshot_meta(),
        "snapshot_meta"
    );
    let low = (first - 1)
        .min(model.snapshot_meta().index)
        .saturating_sub(1);
    for index in low..=last + 1 {
        let want = model.term(index).ctx("model term")?;
        ensure_eq!(store.term(index).ctx("term")?, want, "term({index})");
    }
    ensure_eq!(all_entries(store)?, all_entries(model)?, "entries");
    ensure_eq!(read_snapshot(store)?, read_snapshot(model)?, "snapshot");
    Ok(())
}
