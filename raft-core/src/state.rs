//! The plain data each feature keeps between inputs. Leaf modules: they never see the
//! [`crate::node::Node`], so the node and the feature files can both use them without an
//! import circle.

pub(crate) mod incoming_snapshot;
pub(crate) mod leadership_transfer;
pub(crate) mod membership_change;
pub(crate) mod proposals;
pub(crate) mod reads;
pub(crate) mod rejections;

/// Ticks until a timer that has waited `waited` of `timeout` ticks fires (at least one:
/// a timer fires inside a call to [`crate::Node::tick`]).
pub(crate) fn remaining(waited: u32, timeout: u32) -> u64 {
    u64::from(timeout.saturating_sub(waited).max(1))
}
