//! A leadership transfer in progress on the leader.

use crate::action::TransferId;
use crate::types::NodeId;

/// A transfer in progress on the leader.
#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) id: TransferId,
    pub(crate) target: NodeId,
    pub(crate) elapsed_ticks: u32,
    pub(crate) timeout_now_sent: bool,
}
