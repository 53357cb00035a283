//! Every way a request can fail, its HTTP status and its JSON body.
//!
//! The mapping (see also the notes in `raft-kv`'s state machine docs):
//! - a failed `if_revision` / `if_absent` condition -> 412 `condition_failed`;
//! - malformed input -> 400 (`bad_request`, `empty_key`, `invalid_sequence`);
//! - oversized key or value -> 413 (`key_too_large`, `value_too_large`);
//! - session misuse -> 409 (`stale_sequence`, `session_unknown`);
//! - membership or transfer refused -> 409;
//! - no leader, overload, shutdown -> 503 (retry, on `leader` if named);
//! - timeout or unknown outcome -> 504 (retry a write only under a client session);
//!
//! Every error body also says whether a write certainly did not take effect
//! (`"outcome": "not_applied"`) or may have (`"unknown"`): 504, `session_unknown`,
//! `internal`, and `shutting_down` (a write waiting when the node stopped may still commit
//! on the others) are `unknown`; everything else is `not_applied`.
//! - unknown route -> 404, wrong method -> 405.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::wire::{ErrorBody, KeyMeta, LeaderRef};

/// The machine-readable error codes of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed request (bad query parameter, header or JSON).
    BadRequest,
    /// The key is empty.
    EmptyKey,
    /// The key exceeds the configured limit.
    KeyTooLarge,
    /// The value (or the whole body) exceeds the configured limit.
    ValueTooLarge,
    /// A session write numbered 0.
    InvalidSequence,
    /// A session write older than the session's last one.
    StaleSequence,
    /// The session is unknown (expired or evicted): the write's outcome is unknown.
    SessionUnknown,
    /// The write's condition did not hold.
    ConditionFailed,
    /// The key does not exist.
    KeyNotFound,
    /// No such route.
    RouteNotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// This node is not the leader and could not forward the request.
    NotLeader,
    /// The cluster cannot serve right now (no leader, transfer in progress, leadership
    /// lost, lease reads disabled ...); retry.
    Unavailable,
    /// Too many requests pending; back off.
    Overloaded,
    /// No answer in time; the write may still happen.
    Timeout,
    /// The write may or may not have happened.
    OutcomeUnknown,
    /// A membership change was refused.
    MembershipRefused,
    /// A leadership transfer failed.
    TransferFailed,
    /// The node is shutting down or stopped.
    ShuttingDown,
    /// A bug or a fatal node error.
    Internal,
    /// No bearer token, or one the node does not know.
    Unauthorized,
    /// The token's role does not allow this request.
    Forbidden,
    /// The request body did not arrive in time.
    RequestTimeout,
}

impl ErrorCode {
    /// The code as it appears in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::EmptyKey => "empty_key",
            ErrorCode::KeyTooLarge => "key_too_large",
            ErrorCode::ValueTooLarge => "value_too_large",
            ErrorCode::InvalidSequence => "invalid_sequence",
            ErrorCode::StaleSequence => "stale_sequence",
            ErrorCode::SessionUnknown => "session_unknown",
            ErrorCode::ConditionFailed => "condition_failed",
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::RouteNotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::MembershipRefused => "membership_refused",
            ErrorCode::TransferFailed => "transfer_failed",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RequestTimeout => "request_timeout",
        }
    }

    /// The HTTP status the code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::EmptyKey | ErrorCode::InvalidSequence => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::KeyTooLarge | ErrorCode::ValueTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::StaleSequence
            | ErrorCode::SessionUnknown
            | ErrorCode::MembershipRefused
            | ErrorCode::TransferFailed => StatusCode::CONFLICT,
            ErrorCode::ConditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorCode::KeyNotFound | ErrorCode::RouteNotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::NotLeader
            | ErrorCode::Unavailable
            | ErrorCode::Overloaded
            | ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout | ErrorCode::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// Whether a failed write may have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// It certainly did not: retrying is safe, with or without a session.
    NotApplied,
    /// It may have: retry under the same client session (exactly-once), or read.
    Unknown,
}

impl WriteOutcome {
    /// The name in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::NotApplied => "not_applied",
            WriteOutcome::Unknown => "unknown",
        }
    }
}

impl ErrorCode {
    /// Whether a write failing with this code may have taken effect.
    pub fn write_outcome(self) -> WriteOutcome {
        match self {
            ErrorCode::Timeout
            | ErrorCode::OutcomeUnknown
            | ErrorCode::SessionUnknown
            | ErrorCode::ShuttingDown
            | ErrorCode::Internal => WriteOutcome::Unknown,
            _ => WriteOutcome::NotApplied,
        }
    }
}

/// A failed request: code, explanation, and where the leader is when known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// What went wrong.
    pub code: ErrorCode,
    /// For people: what happened and what to do.
    pub message: String,
    /// The leader, when known.
    pub leader: Option<LeaderRef>,
    /// With `ConditionFailed`: the key's metadata (None when absent) and the store revision.
    pub condition: Option<(Option<KeyMeta>, u64)>,
}

impl ApiError {
    /// An error without leader information.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            leader: None,
            condition: None,
        }
    }

    /// The same error naming the leader.
    #[must_use]
    pub fn with_leader(mut self, leader: Option<LeaderRef>) -> Self {
        self.leader = leader;
        self
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// The JSON body of the error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.as_str().to_string(),
            message: self.message.clone(),
            leader: self.leader.clone(),
            current: self.condition.and_then(|(current, _)| current),
            revision: self.condition.map(|(_, revision)| revision),
            outcome: Some(self.code.write_outcome().as_str().to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code.as_str(), message = %self.message, "request failed");
        } else {
            tracing::debug!(code = self.code.as_str(), message = %self.message, "request refused");
        }
        crate::server::newline::json_line(status, &self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the statuses the API promises (issue 8 and the state machine notes).
    #[test]
    fn statuses_match_the_api_contract() {
        assert_eq!(ErrorCode::ConditionFailed.status(), 412);
        assert_eq!(ErrorCode::KeyNotFound.status(), 404);
        assert_eq!(ErrorCode::ValueTooLarge.status(), 413);
        assert_eq!(ErrorCode::KeyTooLarge.status(), 413);
        assert_eq!(ErrorCode::EmptyKey.status(), 400);
        assert_eq!(ErrorCode::StaleSequence.status(), 409);
        assert_eq!(ErrorCode::NotLeader.status(), 503);
        assert_eq!(ErrorCode::Timeout.status(), 504);
        assert_eq!(ErrorCode::RouteNotFound.status(), 404);
        assert_eq!(ErrorCode::MethodNotAllowed.status(), 405);
        assert_eq!(ErrorCode::Unauthorized.status(), 401);
        assert_eq!(ErrorCode::Forbidden.status(), 403);
        assert_eq!(ErrorCode::OutcomeUnknown.status(), 504);
    }

    /// Goal (issue 18): a client can tell "certainly not applied, retry" from "may have
    /// been applied" by the body, and 504 only ever means the latter.
    #[test]
    fn bodies_say_whether_a_write_may_have_applied() {
        let body = |code: ErrorCode| ApiError::new(code, "x").body().outcome;
        assert_eq!(body(ErrorCode::NotLeader).as_deref(), Some("not_applied"));
        assert_eq!(body(ErrorCode::Unavailable).as_deref(), Some("not_applied"));
        assert_eq!(body(ErrorCode::Overloaded).as_deref(), Some("not_applied"));
        assert_eq!(body(ErrorCode::OutcomeUnknown).as_deref(), Some("unknown"));
        assert_eq!(body(ErrorCode::Timeout).as_deref(), Some("unknown"));
        for code in [
            ErrorCode::NotLeader,
            ErrorCode::Unavailable,
            ErrorCode::Overloaded,
            ErrorCode::ConditionFailed,
            ErrorCode::BadRequest,
        ] {
            assert_ne!(code.status(), 504, "{code:?}");
        }
    }

    /// Goal: the body carries the leader and, for failed conditions, the key's state.
    #[test]
    fn body_carries_leader_and_condition() {
        let mut error = ApiError::new(ErrorCode::ConditionFailed, "revision mismatch").with_leader(
            Some(LeaderRef {
                id: 2,
                url: Some("http://127.0.0.1:8002".into()),
            }),
        );
        error.condition = Some((None, 7));
        let body = error.body();
        assert_eq!(body.error, "condition_failed");
        assert_eq!(body.leader.map(|l| l.id), Some(2));
        assert_eq!(body.revision, Some(7));
        assert_eq!(body.current, None);
    }
}
