//! Callers without the right token: no token, a wrong one, a read or write token on admin
//! routes, and a principal reusing another's client session.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use raft_kv::server::client::{Answer, Connection};
use raft_kv::server::credentials::Credentials;
use raft_kv::server::wire::{HEADER_CLIENT_ID, HEADER_SEQUENCE, MembersBody, WriteBody};

use crate::support::Cluster;
use crate::{assert_serving, call, client_with, token_of, with_token, write_some};

fn members_json(members: &MembersBody) -> serde_json::Value {
    serde_json::to_value(members).expect("members serialize")
}

/// Goal: membership and leadership cannot be changed without an admin token, and not even
/// an admin can silently move an existing member to another address (issue 14: an open
/// admin API let anyone remove nodes and redirect clients).
/// Method: on every node, send each admin call with no token, an unknown token, the read
/// token and the write token; then ask an admin to re-add a voter at an attacker's
/// address. Membership, with addresses, must be the same on every node afterwards. Last,
/// an admin's transfer sent to a follower (forwarded to the leader) succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_without_an_admin_token_change_nothing() {
    let cluster = Cluster::start_secure(3, &[]);
    cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 3).await;
    let admin = cluster.credentials.clone();
    // Nodes register their URLs shortly after a leader appears: wait until every node
    // knows every member's addresses, so "unchanged" compares settled lists.
    crate::wait_for(
        Duration::from_secs(20),
        "every node to know every URL",
        || async {
            let mut settled = true;
            for node in &cluster.nodes {
                let members = client_with_one(&cluster, &node.url()).members().await;
                settled &= members.is_ok_and(|m| {
                    m.members.len() == 3 && m.members.iter().all(|m| m.url.is_some())
                });
            }
            settled
        },
    )
    .await;
    let before = client_with(&cluster, admin.clone())
        .members()
        .await
        .unwrap();
    let redirect =
        r#"{"id":2,"raft_addr":"127.0.0.1:1","url":"https://attacker.example:443","role":"voter"}"#;
    let attacks = [
        (Method::DELETE, "/v1/members/2", ""),
        (
            Method::POST,
            "/v1/members",
            r#"{"id":9,"raft_addr":"127.0.0.1:9","url":"https://127.0.0.1:9","role":"voter"}"#,
        ),
        (Method::POST, "/v1/members", redirect),
        (Method::POST, "/v1/leader/transfer", ""),
    ];
    let callers: [(&str, Credentials, u16); 4] = [
        ("no token", with_token(&cluster, None), 401),
        (
            "unknown token",
            with_token(&cluster, Some("not-a-token-0123456789".into())),
            401,
        ),
        (
            "read token",
            with_token(&cluster, Some(token_of(&cluster, "reader"))),
            403,
        ),
        (
            "write token",
            with_token(&cluster, Some(token_of(&cluster, "writer"))),
            403,
        ),
    ];
    for url in cluster.urls() {
        for (method, path, body) in &attacks {
            for (who, credentials, status) in &callers {
                let answer = call(&url, credentials, method.clone(), path, body).await;
                assert_eq!(
                    answer.status.as_u16(),
                    *status,
                    "{who}: {method} {path} on {url}"
                );
            }
        }
        let reader = &callers[2].1;
        let put = call(&url, reader, Method::PUT, "/v1/kv/before-0", "overwritten").await;
        assert_eq!(put.status.as_u16(), 403, "a read token wrote on {url}");
        let anonymous = call(&url, &callers[0].1, Method::GET, "/v1/kv/before-0", "").await;
        assert_eq!(anonymous.status.as_u16(), 401, "an anonymous read on {url}");
        let metrics = call(&url, &callers[0].1, Method::GET, "/metrics", "").await;
        assert_eq!(metrics.status.as_u16(), 401, "anonymous metrics on {url}");
        let metrics = call(&url, reader, Method::GET, "/metrics", "").await;
        let text = String::from_utf8_lossy(&metrics.body);
        assert!(text.contains("raft_kv_http_connections_max"), "{text}");
        let refused = call(&url, &admin, Method::POST, "/v1/members", redirect).await;
        assert_eq!(
            refused.status.as_u16(),
            409,
            "an admin rewrote a voter's address"
        );
    }
    for node in &cluster.nodes {
        let mut client = client_with_one(&cluster, &node.url());
        let now = client.members().await.unwrap();
        assert_eq!(
            members_json(&now),
            members_json(&before),
            "members on node {}",
            node.id
        );
    }
    // An admin call made to a follower is forwarded to the leader over TLS with the
    // caller's token, and succeeds.
    let leader = crate::support::status_with(&cluster.urls()[0], &admin)
        .await
        .unwrap()
        .leader
        .unwrap()
        .id;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let path = format!("/v1/leader/transfer?target={}", follower.id);
    let moved = call(&follower.url(), &admin, Method::POST, &path, "").await;
    assert_eq!(moved.status.as_u16(), 200, "{:?}", moved.body);
    assert_serving(&cluster, &acknowledged).await;
}

fn client_with_one(cluster: &Cluster, url: &str) -> raft_kv::server::client::ClusterClient {
    let options = raft_kv::server::client::ClientOptions {
        credentials: cluster.credentials.clone(),
        retry_for: Duration::from_secs(5),
        ..Default::default()
    };
    raft_kv::server::client::ClusterClient::new(&[url.to_string()], options).unwrap()
}

async fn session_put(
    url: &str,
    credentials: &Credentials,
    key: &str,
    client_id: u64,
    sequence: u64,
) -> Answer {
    let mut connection = Connection::with_credentials(url, credentials).unwrap();
    let headers = [
        (HEADER_CLIENT_ID, client_id.to_string()),
        (HEADER_SEQUENCE, sequence.to_string()),
    ];
    let path = format!("/v1/kv/{key}");
    connection
        .send(Method::PUT, &path, &headers, Bytes::from("value"))
        .await
        .unwrap()
}

/// Goal: a client session belongs to the principal that uses it: another principal that
/// sends the same `client-id` with a huge sequence (issue 14: this made the real client's
/// writes fail with `stale_sequence`) cannot touch it, on any node.
/// Method: the writer writes under client id 42 through node 1; the admin principal sends
/// client id 42 with sequences 1 and 2^62 through node 2; the writer's next write through node 3
/// is accepted, and its retry is answered from the session (same revision, not applied
/// twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_its_principal() {
    let cluster = Cluster::start_secure(3, &[]);
    cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 2).await;
    let urls = cluster.urls();
    let writer = with_token(&cluster, Some(token_of(&cluster, "writer")));
    let other = with_token(&cluster, Some(token_of(&cluster, "admin")));
    let first = session_put(&urls[0], &writer, "mine", 42, 1).await;
    assert_eq!(first.status.as_u16(), 200, "{:?}", first.body);
    // As an attacker would: take over the id, then jump its sequence far ahead. Both land
    // in the attacker's own session (the jump is refused there or accepted; either way it
    // is not the writer's).
    for sequence in [1, 1 << 62] {
        let poison = session_put(&urls[1], &other, "theirs", 42, sequence).await;
        assert!(!poison.status.is_server_error(), "{:?}", poison.body);
    }
    let second = session_put(&urls[2], &writer, "mine", 42, 2).await;
    assert_eq!(second.status.as_u16(), 200, "poisoned: {:?}", second.body);
    let retry = session_put(&urls[0], &writer, "mine", 42, 2).await;
    assert_eq!(retry.status.as_u16(), 200, "{:?}", retry.body);
    let revision = |answer: &Answer| answer.json::<WriteBody>().unwrap().revision;
    assert_eq!(
        revision(&second),
        revision(&retry),
        "the retry was applied twice"
    );
    assert_serving(&cluster, &acknowledged).await;
}
