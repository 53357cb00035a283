//! How the leader cuts a follower's backlog into appends.

use super::*;

/// Goal: a follower far behind is caught up in appends of at most 64 entries per slot of
/// the in-flight window (here one slot), however small the entries are, so that no single
/// message grows with the backlog; and it does catch up.
#[test]
fn a_long_backlog_goes_out_in_appends_of_at_most_64_entries_per_window_slot() {
    let mut cluster = Cluster::with_config(&[1, 2, 3], |id| Config {
        max_inflight_appends: 1,
        ..config(id)
    });
    cluster.elect(1);
    cluster.isolate(3);
    for _ in 0..150 {
        let _ = cluster.propose(1, b"x");
        cluster.settle();
    }
    cluster.heal();
    let mut sizes = Vec::new();
    for _ in 0..50 {
        if cluster.node(3).last_index() == cluster.node(1).last_index() {
            break;
        }
        cluster.tick(1);
        while let Some(message) = cluster.network.pop_front() {
            if let (3, MessageBody::Append { entries, .. }) = (message.to, &message.body) {
                sizes.push(entries.len());
            }
            cluster.deliver(message);
        }
    }
    assert_eq!(
        cluster.node(3).last_index(),
        cluster.node(1).last_index(),
        "n3 caught up; appends sent: {sizes:?}"
    );
    assert_eq!(sizes.iter().max(), Some(&64), "appends sent: {sizes:?}");
}

/// Goal: a follower whose one sync covers several appends from the leader answers with one
/// acknowledgement, for the last entry, not one per append; the leader still commits
/// everything, and a lone append still gets its own answer.
#[test]
fn one_sync_covering_several_appends_is_acknowledged_once() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    cluster.auto_persist = false;
    cluster.persist(1);
    for payload in [b"a", b"b", b"c"] {
        let _ = cluster.propose(1, payload);
        cluster.process(1);
    }
    let appends_to_2: Vec<_> = cluster
        .network
        .iter()
        .filter(|m| m.to == 2)
        .cloned()
        .collect();
    assert_eq!(
        appends_to_2.len(),
        3,
        "one append per proposal: {appends_to_2:?}"
    );
    cluster.network.retain(|m| m.to != 2);
    for append in appends_to_2 {
        cluster.deliver(append);
    }
    assert!(
        cluster.network.iter().all(|m| m.from != 2),
        "nothing is acknowledged before the sync: {:?}",
        cluster.network
    );
    cluster.persist(2);
    let last = cluster.node(1).last_index();
    let acks: Vec<_> = cluster
        .network
        .iter()
        .filter(|m| m.from == 2)
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(
        acks,
        vec![MessageBody::AppendResponse {
            success: true,
            match_index: last,
            hint: None
        }],
        "one acknowledgement for the sync, of the last entry"
    );
    cluster.auto_persist = true;
    cluster.persist(1);
    cluster.persist(3);
    cluster.settle();
    assert_eq!(cluster.node(1).commit_index(), last, "everything commits");

    let _ = cluster.propose(1, b"d");
    cluster.process(1);
    let lone = cluster.network.iter().filter(|m| m.to == 2).count();
    assert_eq!(lone, 1);
    cluster.settle();
    assert_eq!(
        cluster.node(1).commit_index(),
        last + 1,
        "a lone append commits too"
    );
}
