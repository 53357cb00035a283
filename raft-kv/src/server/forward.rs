//! Admin requests a follower cannot serve go to the leader it names, once, over the same
//! kind of connection any client would use (TLS with the cluster's CA when the node has
//! it), carrying the caller's own `Authorization` header: the leader checks the caller
//! itself, so forwarding never lends a follower's authority to anyone.

use axum::body::Bytes;
use axum::response::Response;

use crate::server::auth::Caller;
use crate::server::client;
use crate::server::credentials::Credentials;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::http::ApiState;
use crate::server::wire::HEADER_FORWARDED;

/// Sends an admin request this node could not serve to the leader it names, once; answers
/// with `error` when there is no leader to ask or the request was already forwarded.
pub(crate) async fn forward_or(
    state: &ApiState,
    parts: &axum::http::request::Parts,
    body: Bytes,
    error: ApiError,
) -> Result<Response, ApiError> {
    let leader_url = match (&error.code, &error.leader) {
        (ErrorCode::NotLeader, Some(leader)) => leader.url.clone(),
        _ => None,
    };
    let Some(url) = leader_url else {
        return Err(error);
    };
    if parts.headers.contains_key(HEADER_FORWARDED) {
        return Err(error);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    tracing::debug!(%url, %path, "forwarding an admin request to the leader");
    // The leader checks the caller's token itself; the forward uses TLS like any client.
    let credentials = Credentials {
        tls: state.forward_tls.clone(),
        token: None,
    };
    let authorization = parts
        .extensions
        .get::<Caller>()
        .and_then(|c| c.authorization.clone());
    let answer = client::forward(
        &url,
        parts.method.clone(),
        &path,
        body,
        state.limits.forward_timeout,
        &credentials,
        authorization,
    )
    .await
    .map_err(|e| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("could not forward to the leader at {url}: {e}"),
        )
        .with_leader(error.leader.clone())
    })?;
    Ok(answer)
}
