//! API misuse by a host panics, with a message naming the misuse (see each method's
//! `# Panics`), and storage read-back is checked by `RestoredState::validate`.

mod common;

use common::Cluster;
use raft_core::{
    Config, Entry, EntryPayload, Membership, Node, RestoredState, RestoredStateError, SnapshotMeta,
};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: EntryPayload::Noop,
    }
}

fn restored_with(entries: Vec<Entry>) -> RestoredState {
    RestoredState {
        entries,
        ..RestoredState::bootstrap(Membership::with_voters([1]))
    }
}

#[test]
fn validate_accepts_a_contiguous_log_and_names_each_fault() {
    assert_eq!(
        restored_with(vec![entry(1, 1), entry(2, 2)]).validate(),
        Ok(())
    );
    assert_eq!(
        restored_with(vec![entry(1, 1), entry(3, 1)]).validate(),
        Err(RestoredStateError::NotContiguous {
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        restored_with(vec![entry(1, 2), entry(2, 1)]).validate(),
        Err(RestoredStateError::TermDecreases {
            index: 2,
            term: 1,
            previous: 2
        })
    );
    let mut below_snapshot = restored_with(vec![entry(6, 2)]);
    below_snapshot.snapshot.index = 5;
    below_snapshot.snapshot.term = 3;
    assert_eq!(
        below_snapshot.validate(),
        Err(RestoredStateError::TermDecreases {
            index: 6,
            term: 2,
            previous: 3
        })
    );
    let mut at_the_end = restored_with(vec![entry(u64::MAX, 1), entry(0, 1)]);
    at_the_end.snapshot.index = u64::MAX - 1;
    assert_eq!(
        at_the_end.validate(),
        Err(RestoredStateError::IndexOverflow)
    );
}

#[test]
#[should_panic(expected = "host misuse: Node::new with a restored state")]
fn a_restored_log_with_a_gap_panics() {
    let _ = Node::new(
        Config::new(1, 1),
        restored_with(vec![entry(1, 1), entry(3, 1)]),
    );
}

/// A single node that committed and applied a few entries.
fn applied_cluster() -> (Cluster, u64) {
    let mut cluster = Cluster::new(&[1]);
    cluster.elect(1);
    let _ = cluster.propose(1, b"a");
    let _ = cluster.propose(1, b"b");
    cluster.settle();
    let applied = cluster.node(1).applied_index();
    assert!(applied >= 3, "applied {applied}");
    (cluster, applied)
}

#[test]
fn a_genuine_snapshot_is_accepted_and_a_stale_one_ignored() {
    let (mut cluster, applied) = applied_cluster();
    let meta = cluster.node(1).snapshot_meta_at(applied).expect("meta");
    cluster.node_mut(1).on_snapshot_saved(meta.clone());
    assert_eq!(cluster.node(1).snapshot_meta().index, applied);
    // Reporting it again, or an older one, changes nothing.
    cluster.node_mut(1).on_snapshot_saved(meta);
    cluster
        .node_mut(1)
        .on_snapshot_saved(SnapshotMeta::default());
    assert_eq!(cluster.node(1).snapshot_meta().index, applied);
}

#[test]
#[should_panic(expected = "host misuse: on_snapshot_saved at index")]
fn a_snapshot_beyond_the_applied_index_panics() {
    let (mut cluster, applied) = applied_cluster();
    let mut meta = cluster.node(1).snapshot_meta_at(applied).expect("meta");
    meta.index = applied + 1;
    cluster.node_mut(1).on_snapshot_saved(meta);
}

#[test]
#[should_panic(expected = "host misuse: on_snapshot_saved with term")]
fn a_snapshot_with_the_wrong_term_panics() {
    let (mut cluster, applied) = applied_cluster();
    let mut meta = cluster.node(1).snapshot_meta_at(applied).expect("meta");
    meta.term += 1;
    cluster.node_mut(1).on_snapshot_saved(meta);
}
