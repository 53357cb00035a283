//! A membership change the leader is carrying out, and its phase.

use std::collections::BTreeSet;

use crate::action::ChangeId;
use crate::membership::Membership;
use crate::types::NodeId;

/// A membership change the leader is carrying out.
#[derive(Debug)]
pub(crate) struct PendingChange {
    pub(crate) id: ChangeId,
    pub(crate) target: Membership,
    pub(crate) phase: ChangePhase,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChangePhase {
    /// Future voters receive the log as non-members until they are caught up.
    CatchingUp {
        newcomers: BTreeSet<NodeId>,
        elapsed_ticks: u32,
    },
    /// C(old,new) is appended.
    Joint,
    /// C(new) is appended.
    Leaving,
}
