//! The engine's lease grant against the core it comes from: a 3-node in-memory cluster
//! (tests/common), the leader cut off, time moving in uneven steps.

mod common;

use std::time::Duration;

use common::Cluster;
use proptest::prelude::*;
use raft_host::SnapshotPolicy;

fn lease_cluster() -> Cluster {
    Cluster::new_with(3, SnapshotPolicy::disabled(), |config| {
        config.raft.lease_reads = true;
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Goal: the grant never lets a read through at a time the core, told that time,
    /// would refuse it: whatever the gaps between the driver's wake-ups, a grant that
    /// serves at the next wake-up's time implies the core still holds its lease then.
    /// Method: elect, cut the leader off, then wake it at random gaps (late, early,
    /// several ticks at once) until its lease is gone; at each wake-up compare the grant
    /// published before it with the core after the ticks it delivers.
    #[test]
    fn grant_never_outlives_the_core_lease(
        gaps_us in proptest::collection::vec(0u64..35_000, 1..60),
        connected_steps in 0usize..5,
    ) {
        let mut cluster = lease_cluster();
        let leader = cluster.elect();
        for _ in 0..connected_steps {
            cluster.step();
        }
        cluster.run_until(100, |c| c.hosts[&leader].engine.lease_grant().is_some());
        cluster.isolated.insert(leader);
        let mut now = cluster.now;
        let mut lapsed = false;
        for gap in gaps_us {
            let host = cluster.host(leader);
            let grant = host.engine.lease_grant();
            now += Duration::from_micros(gap);
            host.engine.handle_timeout(now);
            let core = host.engine.node().lease_read();
            if let Some(grant) = grant
                && grant.can_serve(now, u64::MAX)
            {
                prop_assert!(
                    core.is_some_and(|lease| lease.read_index == grant.read_index),
                    "grant {grant:?} serves at {now:?}, the core says {core:?}"
                );
            }
            // Drain (messages go nowhere: the leader is cut off).
            let mut outbox = Vec::new();
            host.drain(&mut outbox);
            lapsed |= core.is_none();
            if lapsed {
                prop_assert!(host.engine.lease_grant().is_none(), "a grant after the lease lapsed");
            }
        }
    }
}

/// Goal: a leader that starts a leadership transfer voids its grant before the message
/// that lets the target take over can leave.
#[test]
fn transfer_voids_the_grant_before_timeout_now_leaves() {
    let mut cluster = lease_cluster();
    let leader = cluster.elect();
    cluster.run_until(100, |c| c.hosts[&leader].engine.lease_grant().is_some());
    let target = if leader == 1 { 2 } else { 1 };
    let host = cluster.host(leader);
    let _ = host.engine.handle_transfer(Some(target));
    assert_eq!(
        host.engine.lease_grant(),
        None,
        "the grant published before the first poll_transmit must be void"
    );
}
