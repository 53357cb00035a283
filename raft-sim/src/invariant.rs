//! Checks of the workload's own, beside the simulator's protocol checks and the
//! linearizability of the history.
//!
//! An [`Invariant`] is told about every command a node applies, may look at the whole
//! cluster after every event, and gets a last look at the end of the run. A failure
//! (`Err(text)`) is reported as a [`ViolationKind::Invariant`](crate::ViolationKind)
//! violation and ends the run, like any other.

use raft_core::{Index, Node, NodeId, StateMachine, Term};

use crate::checker::SafetyChecker;
use crate::host::{Host, Liveness};
use crate::workload::{OperationOf, Workload};

/// A property of the system under test, checked by the simulator.
///
/// Every method has a default that checks nothing, so an invariant implements only what it
/// needs.
pub trait Invariant<W: Workload> {
    /// A node applied a command. Called in apply order on each node, on every node.
    fn on_apply(&mut self, applied: &Applied<'_, W>) -> Result<(), String> {
        let _ = applied;
        Ok(())
    }

    /// After every event of a run that has invariants (keep it cheap: a run has some
    /// 10,000 to 200,000 events). Not called once a violation is found.
    fn on_event(&mut self, cluster: &Cluster<'_, W>) -> Result<(), String> {
        let _ = cluster;
        Ok(())
    }

    /// At the end of a run, once every other check has passed.
    fn at_end(&mut self, cluster: &Cluster<'_, W>) -> Result<(), String> {
        let _ = cluster;
        Ok(())
    }
}

/// A command one node applied.
pub struct Applied<'a, W: Workload> {
    /// The node.
    pub node: NodeId,
    /// The command's log index.
    pub index: Index,
    /// The state machine's response.
    pub response: &'a <W::Machine as StateMachine>::Response,
    /// The history index of the client operation that sent this command (matched by its
    /// bytes), if a client did.
    pub operation: Option<usize>,
    /// The client history so far.
    pub history: &'a [OperationOf<W>],
}

/// The whole cluster at one moment, read-only.
pub struct Cluster<'a, W: Workload> {
    pub(crate) now_us: u64,
    pub(crate) hosts: &'a [Host<W::Machine>],
    pub(crate) checker: &'a SafetyChecker,
    pub(crate) history: &'a [OperationOf<W>],
}

impl<'a, W: Workload> Cluster<'a, W> {
    /// Virtual now.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The client history so far (unfinished operations have no output).
    pub fn history(&self) -> &'a [OperationOf<W>] {
        self.history
    }

    /// The term of the entry committed at `index`, if any node has committed it.
    pub fn committed_term(&self, index: Index) -> Option<Term> {
        self.checker.committed_at(index).map(|(term, _)| term)
    }

    /// The highest index any node has committed.
    pub fn max_committed(&self) -> Index {
        self.checker.max_committed()
    }

    /// Every node, in id order (also those down or not yet members).
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'a, W::Machine>> + 'a {
        self.hosts.iter().map(|host| {
            let up = host.liveness == Liveness::Up;
            NodeView {
                id: host.id(),
                up,
                node: host.node().filter(|_| up),
                machine: host.machine().filter(|_| up),
                applied_index: host.applied_index(),
            }
        })
    }
}

/// One node as an invariant sees it.
pub struct NodeView<'a, M> {
    /// Its id.
    pub id: NodeId,
    /// Whether its process runs (it may still be paused).
    pub up: bool,
    /// The Raft node (role, term, log, commit index), while up.
    pub node: Option<&'a Node>,
    /// Its state machine, while up and holding the cluster's state (not a witness's).
    pub machine: Option<&'a M>,
    /// The index its state machine has applied through.
    pub applied_index: Index,
}

/// An invariant checked after every event, from a closure.
///
/// ```
/// use raft_core::Role;
/// use raft_sim::invariant::{Cluster, EveryEvent};
///
/// /// No two running nodes lead the same term.
/// fn one_leader_per_term<W: raft_sim::Workload>(cluster: &Cluster<'_, W>) -> Result<(), String> {
///     let mut terms: Vec<u64> = cluster
///         .nodes()
///         .filter_map(|view| view.node)
///         .filter(|node| node.role() == Role::Leader)
///         .map(|node| node.term())
///         .collect();
///     let leaders = terms.len();
///     terms.sort_unstable();
///     terms.dedup();
///     if terms.len() == leaders { Ok(()) } else { Err(format!("two leaders in one term: {terms:?}")) }
/// }
/// # fn build<W: raft_sim::Workload + 'static>(simulation: raft_sim::Simulation<W>) -> raft_sim::Simulation<W> {
/// simulation.with_invariant(EveryEvent(one_leader_per_term::<W>))
/// # }
/// ```
pub struct EveryEvent<F>(pub F);

impl<W: Workload, F: FnMut(&Cluster<'_, W>) -> Result<(), String>> Invariant<W> for EveryEvent<F> {
    fn on_event(&mut self, cluster: &Cluster<'_, W>) -> Result<(), String> {
        (self.0)(cluster)
    }
}

/// An invariant checked once at the end of the run, from a closure.
pub struct AtEnd<F>(pub F);

impl<W: Workload, F: FnMut(&Cluster<'_, W>) -> Result<(), String>> Invariant<W> for AtEnd<F> {
    fn at_end(&mut self, cluster: &Cluster<'_, W>) -> Result<(), String> {
        (self.0)(cluster)
    }
}
