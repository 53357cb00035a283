//! Checks of durability: what a reopen keeps, synced or not, and how `restore` lines the
//! log up with the snapshot.

use super::super::harness::Harness;
use super::super::model_run::check_ops;
use super::super::ops::random_ops;
use super::super::samples::{meta, run_of};
use super::super::support::{Context, all_entries, commit_snapshot, fresh, reopen};
use crate::storage::Storage;
use crate::types::HardState;

pub(super) fn hard_state_survives_reopen<H: Harness>(h: &mut H) -> Result<(), String> {
    let store = fresh(h)?;
    let (mut store, restored) = reopen(h, store)?;
    ensure_eq!(
        restored.hard_state,
        HardState::default(),
        "hard state never saved"
    );
    let states = [
        HardState {
            term: 1,
            vote: Some(2),
            commit: 0,
        },
        HardState {
            term: 3,
            vote: None,
            commit: 0,
        },
        HardState {
            term: 3,
            vote: Some(7),
            commit: 0,
        },
    ];
    for hard_state in states {
        store.save_hard_state(&hard_state).ctx("save_hard_state")?;
        store.sync().ctx("sync")?;
        let (reopened, restored) = reopen(h, store)?;
        store = reopened;
        ensure_eq!(restored.hard_state, hard_state, "restored hard state");
    }
    Ok(())
}

pub(super) fn synced_writes_survive_reopen<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    let hard_state = HardState {
        term: 2,
        vote: Some(1),
        commit: 3,
    };
    store.append(&run_of(1, 4, 1)).ctx("append")?;
    store.save_hard_state(&hard_state).ctx("save_hard_state")?;
    store.append(&run_of(5, 6, 2)).ctx("append")?;
    store.sync().ctx("sync")?;
    let mut log = run_of(1, 4, 1);
    log.extend(run_of(5, 6, 2));
    for round in 0..2 {
        let (reopened, restored) = reopen(h, store)?;
        store = reopened;
        ensure_eq!(
            restored.hard_state,
            hard_state,
            "hard state after reopen {round}"
        );
        ensure_eq!(restored.entries, log, "entries after reopen {round}");
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (1, 6),
            "(first, last) after reopen"
        );
        ensure_eq!(all_entries(&store)?, log, "entries() after reopen {round}");
    }
    Ok(())
}

pub(super) fn unsynced_writes_reopen_to_a_prefix<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    let synced = HardState {
        term: 1,
        vote: Some(1),
        commit: 2,
    };
    let unsynced = HardState {
        term: 2,
        vote: Some(2),
        commit: 5,
    };
    store.append(&run_of(1, 5, 1)).ctx("append")?;
    store.save_hard_state(&synced).ctx("save_hard_state")?;
    store.sync().ctx("sync")?;
    store.append(&run_of(6, 10, 2)).ctx("append")?;
    store.save_hard_state(&unsynced).ctx("save_hard_state")?;
    let (_, restored) = reopen(h, store)?;
    let count = restored.entries.len() as u64;
    ensure!(
        (5..=10).contains(&count),
        "restored {count} entries; 5 were synced, 10 written"
    );
    let mut log = run_of(1, 5, 1);
    log.extend(run_of(6, 10, 2));
    ensure_eq!(
        restored.entries,
        log[..count as usize].to_vec(),
        "restored entries are not a prefix"
    );
    ensure!(
        restored.hard_state == synced || restored.hard_state == unsynced,
        "restored hard state {:?} was never saved",
        restored.hard_state
    );
    ensure!(
        restored.hard_state == synced || count == 10,
        "the later hard state survived but {} of the entries written before it were lost",
        10 - count
    );
    Ok(())
}

pub(super) fn restore_drops_conflicting_log<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 10, 1)).ctx("append")?;
    store.sync().ctx("sync")?;
    // A crash between commit_snapshot and install_snapshot_log.
    commit_snapshot(&mut store, &meta(6, 2), b"leader state")?;
    let (store, restored) = reopen(h, store)?;
    ensure_eq!(restored.snapshot, meta(6, 2), "restored snapshot");
    ensure!(
        restored.entries.is_empty(),
        "restored {} entries that conflict with the snapshot",
        restored.entries.len()
    );
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (7, 6),
        "(first, last)"
    );
    Ok(())
}

pub(super) fn random_ops_agree_with_model<H: Harness>(h: &mut H) -> Result<(), String> {
    for seed in 1..=4 {
        let ops = random_ops(seed, 80);
        check_ops(h, &ops).map_err(|e| format!("seed {seed}: {e}"))?;
    }
    Ok(())
}
