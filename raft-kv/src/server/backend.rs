//! [`KvBackend`]: what the HTTP layer needs from a node. The HTTP handlers, routing, limits
//! and error mapping are written against this trait only, so they can be tested with an
//! in-memory store; [`crate::server::node::RuntimeBackend`] implements it over a real
//! replicated node.

use std::time::Duration;

use async_trait::async_trait;

use crate::server::error::{ApiError, ErrorCode};
use crate::server::wire::{AddMemberBody, MembersBody, ReadConsistency, StatusBody};
use crate::{Command, Query, QueryResponse, Response};

/// One node of the key-value cluster, as the HTTP API sees it.
///
/// Every method resolves exactly once. Errors are already classified for HTTP
/// ([`ApiError`]); a node that is not the leader answers membership and transfer calls
/// with [`crate::server::error::ErrorCode::NotLeader`] naming the leader, and the HTTP layer
/// forwards the request there.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// This node's id.
    fn id(&self) -> u64;

    /// Replicates `command` and returns the state machine's response once it is applied on
    /// this node (a follower forwards it to the leader).
    async fn write(&self, command: Command) -> Result<Response, ApiError>;

    /// Answers `query` at the given consistency (works on any node).
    async fn read(
        &self,
        query: Query,
        consistency: ReadConsistency,
    ) -> Result<QueryResponse, ApiError>;

    /// Waits until this node has applied a log index above `index` (`Ok(true)`) or
    /// `timeout` passes (`Ok(false)`); an error when the node stops. Watches wait here for
    /// new changes instead of polling. The default serves no watches.
    async fn wait_applied_beyond(&self, index: u64, timeout: Duration) -> Result<bool, ApiError> {
        let _ = (index, timeout);
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "this node does not serve watches",
        ))
    }

    /// The node's status.
    fn status(&self) -> StatusBody;

    /// The cluster's members as this node knows them.
    fn members(&self) -> MembersBody;

    /// Adds a node (or promotes a learner when `role` is voter); returns the membership.
    async fn add_member(&self, request: AddMemberBody) -> Result<MembersBody, ApiError>;

    /// Removes a node; returns the membership.
    async fn remove_member(&self, id: u64) -> Result<MembersBody, ApiError>;

    /// Hands leadership to `target` (or the best voter); returns the new leader's id.
    async fn transfer_leader(&self, target: Option<u64>) -> Result<u64, ApiError>;

    /// Appends the node's metrics in Prometheus text format.
    fn render_metrics(&self, out: &mut String);

    /// `Ok` while the node serves; the reason otherwise.
    fn health(&self) -> Result<(), String>;
}
