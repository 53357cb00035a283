//! Telling a client why the cluster did not answer: when every node it tried failed for
//! want of a leader, count the voters that are reachable, so the error says "no quorum (1 of
//! 3 nodes reachable)" instead of the last endpoint's connection error.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use crate::server::client::{ClientError, Connection};
use crate::server::credentials::Credentials;
use crate::server::wire::StatusBody;

/// How long each probe may take: the diagnosis runs only on a failure path, briefly.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// `Some(NoLeader)` when a reachable node reports no leader; `None` when no node answers or
/// one knows a leader (then the caller's own error is the truth).
pub async fn no_leader(
    endpoints: &[String],
    credentials: &Credentials,
    tried: &[(String, String)],
) -> Option<ClientError> {
    let mut status = None;
    for endpoint in endpoints {
        if let Some(answer) = probe(endpoint, credentials, "/v1/status").await
            && let Ok(body) = answer.json::<StatusBody>()
        {
            status = Some(body);
            break;
        }
    }
    let status = status?;
    if status.leader.is_some() {
        return None;
    }
    let voters: Vec<_> = status
        .members
        .iter()
        .filter(|m| m.role.starts_with("voter"))
        .collect();
    let mut reachable = 0;
    for voter in &voters {
        // This node answered; the others are asked at their registered URLs.
        let answered = if voter.id == status.id {
            true
        } else if let Some(url) = &voter.url {
            probe(url, credentials, "/healthz")
                .await
                .is_some_and(|answer| answer.status.is_success())
        } else {
            false
        };
        reachable += usize::from(answered);
    }
    let tried = tried
        .iter()
        .map(|(endpoint, error)| format!("{endpoint} ({error})"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(ClientError::NoLeader {
        reachable,
        voters: voters.len(),
        tried,
    })
}

async fn probe(
    endpoint: &str,
    credentials: &Credentials,
    path: &str,
) -> Option<crate::server::client::Answer> {
    let mut connection = Connection::with_credentials(endpoint, credentials).ok()?;
    let send = connection.send(Method::GET, path, &[], Bytes::new());
    tokio::time::timeout(PROBE_TIMEOUT, send).await.ok()?.ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use crate::server::client::{ClientOptions, ClusterClient};
    use crate::server::wire::{ErrorBody, MemberBody, StatusBody};

    /// A node that has lost its quorum: answers health, reports no leader, refuses writes
    /// with 503 `unavailable`; its two fellow voters are at `dead` URLs.
    async fn lonely_node(dead: [String; 2]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let member = |id: u64, url: &str| MemberBody {
            id,
            role: "voter".into(),
            raft_addr: None,
            url: Some(url.to_string()),
        };
        let status = Arc::new(StatusBody {
            id: 1,
            role: "follower".into(),
            term: 3,
            leader: None,
            commit: 0,
            applied: 0,
            last_index: 0,
            snapshot_index: 0,
            members: vec![member(1, &url), member(2, &dead[0]), member(3, &dead[1])],
            progress: Default::default(),
            lifecycle: "running".into(),
        });
        let unavailable = || async {
            let body = ErrorBody {
                error: "unavailable".into(),
                message: "no leader known".into(),
                leader: None,
                current: None,
                revision: None,
                outcome: Some("not_applied".into()),
            };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body))
        };
        let app = Router::new()
            .route(
                "/v1/status",
                get(move || async move { axum::Json((*status).clone()) }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/v1/kv/{*key}", get(unavailable).put(unavailable));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// Goal: with one of three voters alive, a write reports the lost quorum with the count
    /// of reachable nodes and what each endpoint said, not the last connection error.
    #[tokio::test]
    async fn no_quorum_is_reported_as_such() {
        let dead = [
            format!("http://127.0.0.1:{}", free_port()),
            format!("http://127.0.0.1:{}", free_port()),
        ];
        let live = lonely_node(dead.clone()).await;
        let options = ClientOptions {
            request_timeout: Duration::from_secs(2),
            retry_for: Duration::from_millis(600),
            ..ClientOptions::default()
        };
        let endpoints = [live.clone(), dead[0].clone(), dead[1].clone()];
        let mut client = ClusterClient::new(&endpoints, options).unwrap();
        let error = client
            .put(
                b"k",
                "v".into(),
                crate::server::client::WriteCondition::Always,
            )
            .await
            .expect_err("no quorum");
        let text = error.to_string();
        assert!(
            text.starts_with("no leader: the cluster has no quorum (1 of 3 nodes reachable)"),
            "{text}"
        );
        assert!(text.contains("cannot connect"), "{text}");
        assert!(text.contains("no leader known"), "{text}");
    }

    use std::time::Duration;

    /// A loopback port nothing listens on (it was free a moment ago).
    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }
}
