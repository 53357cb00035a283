//! The hostile suite: real `raft-kv serve` processes on 127.0.0.1, attacked as an outsider,
//! a client with a weak role, or a stranger on the Raft port would. Every test ends by
//! checking that the cluster still serves (a write and a linearizable read succeed) and
//! that every acknowledged write still reads back unchanged.

#[path = "../shared/ports.rs"]
mod ports;
#[path = "../cluster/support.rs"]
mod support;

mod auth;
mod raft_port;
mod resources;

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use raft_kv::server::client::{Answer, ClientOptions, ClusterClient, Connection, WriteCondition};
use raft_kv::server::credentials::{Credentials, files};
use raft_kv::server::wire::ReadConsistency;

use support::Cluster;

/// Acknowledged writes a test made before attacking.
pub(crate) type Acknowledged = Vec<(String, String)>;

/// Writes `count` keys through the cluster client and returns them as acknowledged.
pub(crate) async fn write_some(cluster: &Cluster, prefix: &str, count: usize) -> Acknowledged {
    let mut client = cluster.client();
    let mut acknowledged = Vec::new();
    for i in 0..count {
        let (key, value) = (format!("{prefix}-{i}"), format!("value-{i}"));
        client
            .put(
                key.as_bytes(),
                Bytes::from(value.clone()),
                WriteCondition::Always,
            )
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}\n{}", cluster.logs()));
        acknowledged.push((key, value));
    }
    acknowledged
}

/// The cluster accepts a new write and serves a linearizable read of it, and every
/// acknowledged write reads back unchanged.
pub(crate) async fn assert_serving(cluster: &Cluster, acknowledged: &Acknowledged) {
    let mut client = cluster.client();
    let probe = format!("probe-{}", raft_kv::server::client::random_u64());
    client
        .put(
            probe.as_bytes(),
            Bytes::from("alive"),
            WriteCondition::Always,
        )
        .await
        .unwrap_or_else(|e| panic!("write after the attack: {e}\n{}", cluster.logs()));
    let read = client
        .get(probe.as_bytes(), ReadConsistency::Linearizable)
        .await
        .unwrap_or_else(|e| panic!("read after the attack: {e}\n{}", cluster.logs()));
    assert_eq!(read.map(|v| v.value), Some(Bytes::from("alive")));
    for (key, value) in acknowledged {
        let read = client
            .get(key.as_bytes(), ReadConsistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("read {key}: {e}"));
        assert_eq!(
            read.map(|v| v.value),
            Some(Bytes::from(value.clone())),
            "acknowledged {key} changed"
        );
    }
}

/// The token of `principal` in a secure cluster's token file.
pub(crate) fn token_of(cluster: &Cluster, principal: &str) -> String {
    let text = std::fs::read_to_string(cluster.credentials_dir().join(files::TOKENS))
        .expect("read tokens");
    let value: toml::Value = toml::from_str(&text).expect("tokens parse");
    value["tokens"]
        .as_array()
        .expect("tokens list")
        .iter()
        .find(|t| t["principal"].as_str() == Some(principal))
        .and_then(|t| t["token"].as_str())
        .expect("principal has a token")
        .to_string()
}

/// Credentials of a secure cluster with another token (or none).
pub(crate) fn with_token(cluster: &Cluster, token: Option<String>) -> Credentials {
    Credentials {
        tls: cluster.credentials.tls.clone(),
        token,
    }
}

/// One request to one node, no retries.
pub(crate) async fn call(
    url: &str,
    credentials: &Credentials,
    method: Method,
    path: &str,
    body: &str,
) -> Answer {
    let mut connection = Connection::with_credentials(url, credentials).expect("endpoint");
    let headers = [("content-type", "application/json".to_string())];
    tokio::time::timeout(
        Duration::from_secs(10),
        connection.send(method, path, &headers, Bytes::from(body.to_string())),
    )
    .await
    .expect("an answer in time")
    .expect("an answer")
}

/// A cluster client for one set of credentials.
pub(crate) fn client_with(cluster: &Cluster, credentials: Credentials) -> ClusterClient {
    let options = ClientOptions {
        credentials,
        ..ClientOptions::default()
    };
    ClusterClient::new(&cluster.urls(), options).expect("client")
}

/// The resident set size of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls `condition` until it holds; panics with `what` after `timeout`.
pub(crate) async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
