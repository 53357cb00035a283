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
