//! Real `raft-kv serve` processes on loopback ports, with temporary data dirs, driven over
//! HTTP with the crate's own client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_kv::server::client::{ClientOptions, ClusterClient};
use raft_kv::server::wire::StatusBody;
use tempfile::TempDir;

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// One node: its settings and, while running, its process.
pub(crate) struct Node {
    pub(crate) id: u64,
    http_port: u16,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts (or restarts) the process with the same settings and data dir.
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already runs", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
            .arg("serve")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raft-kv serve");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush beyond what the node already synced.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited with success.
    pub(crate) fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The node's log so far (for failure messages).
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of nodes in one temporary directory.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    dir: TempDir,
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` founding members, each with `extra` serve flags.
    pub(crate) fn start(n: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, (raft, _))| format!("{}=127.0.0.1:{raft}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir,
            extra,
        };
        for (i, (raft_port, http_port)) in ports.into_iter().enumerate() {
            let id = i as u64 + 1;
            let node = cluster.node(id, raft_port, http_port, &["--peers", &peers]);
            cluster.nodes.push(node);
        }
        for node in &mut cluster.nodes {
            node.start();
        }
        cluster
    }

    fn node(&self, id: u64, raft_port: u16, http_port: u16, membership: &[&str]) -> Node {
        let data_dir = self.dir.path().join(format!("node-{id}"));
        let mut args: Vec<String> = vec![
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--raft-addr".into(),
            format!("127.0.0.1:{raft_port}"),
            "--http-addr".into(),
            format!("127.0.0.1:{http_port}"),
        ];
        args.extend(membership.iter().map(|s| s.to_string()));
        args.extend(self.extra.iter().cloned());
        Node {
            id,
            http_port,
            log: self.dir.path().join(format!("node-{id}.log")),
            args,
            child: None,
        }
    }

    /// Starts a new node that joins through `via`'s API.
    pub(crate) fn join(&mut self, id: u64, via: &str) -> usize {
        let node = self.node(id, free_port(), free_port(), &["--join", via]);
        self.nodes.push(node);
        let index = self.nodes.len() - 1;
        self.nodes[index].start();
        index
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::url)
            .collect()
    }

    pub(crate) fn by_id(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("node exists")
    }

    /// A client of every running node.
    pub(crate) fn client(&self) -> ClusterClient {
        ClusterClient::new(&self.urls(), ClientOptions::default()).expect("client")
    }

    /// Waits until every running node names the same leader, with its URL; returns it.
    pub(crate) async fn wait_leader(&self, timeout: Duration) -> u64 {
        self.wait_leader_other_than(0, timeout).await
    }

    /// Waits until every running node names the same leader, other than `old`.
    pub(crate) async fn wait_leader_other_than(&self, old: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.agreed_leader().await {
                Ok(leader) if leader != old => return leader,
                Ok(_) => last = format!("node {old} is still named leader"),
                Err(problem) => last = problem,
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "no agreed leader within {timeout:?}: {last}\n{}",
            self.logs()
        );
    }

    async fn agreed_leader(&self) -> Result<u64, String> {
        let mut leader = None;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let status = status_of(&node.url()).await?;
            let this = status
                .leader
                .ok_or(format!("node {} has no leader", node.id))?;
            if this.url.is_none() {
                return Err(format!("node {} lacks the leader's URL", node.id));
            }
            if leader.is_some_and(|l| l != this.id) {
                return Err("nodes disagree".into());
            }
            leader = Some(this.id);
        }
        leader.ok_or_else(|| "no running node".into())
    }

    pub(crate) fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One node's status (no retries).
pub(crate) async fn status_of(url: &str) -> Result<StatusBody, String> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        retry_for: Duration::ZERO,
    };
    let mut client = ClusterClient::new(&[url.to_string()], options).map_err(|e| e.to_string())?;
    client.status().await.map_err(|e| e.to_string())
}

/// A client bound to one node only, that does not fail over.
pub(crate) fn node_client(url: &str) -> ClusterClient {
    // Generous: an election on a loaded machine can take seconds.
    let options = ClientOptions {
        request_timeout: Duration::from_secs(6),
        retry_for: Duration::from_secs(30),
    };
    ClusterClient::new(&[url.to_string()], options).expect("client")
}

/// Polls `condition` every 25 ms until it holds or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
