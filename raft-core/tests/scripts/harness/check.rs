//! Safety invariants checked after every script command, so that a transcript can never
//! record a violation as expected output by accident (a script that documents a known bug
//! turns the checks off around it, saying so).

use std::collections::BTreeMap;

use bytes::Bytes;
use raft_core::{Index, NodeId, Role, Term};

use super::host::Cluster;

/// Every violation found, one per line; empty when all hold.
pub(crate) fn violations(cluster: &Cluster) -> Vec<String> {
    let mut found = Vec::new();
    let live: Vec<_> = cluster
        .hosts
        .values()
        .filter(|h| !h.crashed && !h.node.is_halted())
        .collect();
    let mut leaders: BTreeMap<Term, NodeId> = BTreeMap::new();
    for host in &live {
        let node = &host.node;
        let id = node.id();
        if node.applied_index() > node.commit_index() {
            found.push(format!(
                "n{id}: applied {} > commit {}",
                node.applied_index(),
                node.commit_index()
            ));
        }
        if node.commit_index() > node.last_index() {
            found.push(format!(
                "n{id}: commit {} > last {}",
                node.commit_index(),
                node.last_index()
            ));
        }
        if node.role() == Role::Leader
            && let Some(other) = leaders.insert(node.term(), id)
        {
            found.push(format!(
                "two leaders in term {}: n{other} and n{id}",
                node.term()
            ));
        }
    }
    // Committed entries agree (log matching on the committed prefix).
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            let (a, b) = (&a.node, &b.node);
            let low = a.first_index().max(b.first_index());
            let high = a.commit_index().min(b.commit_index());
            for index in low..=high {
                if let (Some(ta), Some(tb)) = (a.entry_term(index), b.entry_term(index))
                    && ta != tb
                {
                    found.push(format!(
                        "committed entry {index} differs: n{} has term {ta}, n{} has {tb}",
                        a.id(),
                        b.id()
                    ));
                    break;
                }
            }
        }
    }
    // State machine safety: no two nodes applied different commands at one index.
    let mut applied: BTreeMap<Index, (NodeId, &Bytes)> = BTreeMap::new();
    for host in cluster.hosts.values() {
        for (index, command) in &host.state {
            match applied.get(index) {
                Some((other, existing)) if *existing != command => found.push(format!(
                    "n{other} and n{} applied different commands at {index}",
                    host.config.id
                )),
                Some(_) => {}
                None => {
                    applied.insert(*index, (host.config.id, command));
                }
            }
        }
    }
    found
}
