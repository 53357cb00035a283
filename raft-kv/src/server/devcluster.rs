//! A local cluster of `raft-kv serve` child processes on loopback, for `raft-kv
//! dev-cluster` and `raft-kv bench --spawn-cluster`. Each node is a real process, so a
//! user can kill one and watch the others fail over.
//!
//! Unless told `insecure`, the cluster is secured like a real one: a throwaway CA, node and
//! client certificates and tokens are generated under `<data_dir>/credentials`
//! ([`crate::server::devcerts`]), every node serves HTTPS with bearer tokens, and the CLI
//! finds these credentials by itself when run from the directory holding the data dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::server::client::{ClientOptions, ClusterClient};
use crate::server::credentials::{CredentialSources, Credentials, dev_credentials_dir, files};
use crate::server::devcerts;

/// Where and how to start the nodes.
#[derive(Clone, Debug)]
pub struct DevClusterOptions {
    /// The `raft-kv` binary to run (normally the current executable).
    pub binary: PathBuf,
    /// Number of nodes.
    pub nodes: u64,
    /// Node `i` (from 1) keeps its data in `<data_dir>/node-<i>`.
    pub data_dir: PathBuf,
    /// Node `i` listens for peers on `127.0.0.1:<raft_port_base + i - 1>`.
    pub raft_port_base: u16,
    /// Node `i` serves HTTP on `127.0.0.1:<http_port_base + i - 1>`.
    pub http_port_base: u16,
    /// Extra `serve` flags given to every node.
    pub extra_args: Vec<String>,
    /// Whether the nodes' logs go to this process's stderr (else they are discarded).
    pub show_logs: bool,
    /// Plaintext and no authentication (`serve --insecure`) instead of TLS and tokens.
    pub insecure: bool,
    /// Extra DNS names or IPs for the node certificates (beyond `node-<id>.raft`,
    /// `localhost` and `127.0.0.1`).
    pub tls_sans: Vec<String>,
}

/// A running local cluster. Dropping it kills the nodes; [`DevCluster::stop`] stops them
/// gracefully.
pub struct DevCluster {
    nodes: Vec<(u64, Child)>,
    endpoints: Vec<String>,
    /// How the nodes were started, to restart one the same way.
    options: DevClusterOptions,
    peers: String,
    /// Nodes whose exit was already reported.
    reported: Vec<u64>,
    /// What clients of this cluster present (admin token, client certificate).
    credentials: Credentials,
    /// Where the credentials are (`None` when insecure).
    credentials_dir: Option<PathBuf>,
}

impl DevCluster {
    /// Starts the nodes (they found one cluster together).
    pub fn start(options: &DevClusterOptions) -> std::io::Result<DevCluster> {
        let ids: Vec<u64> = (1..=options.nodes).collect();
        let port = |base: u16, id: u64| base.saturating_add(u16::try_from(id - 1).unwrap_or(0));
        let peers = ids
            .iter()
            .map(|id| format!("{id}=127.0.0.1:{}", port(options.raft_port_base, *id)))
            .collect::<Vec<_>>()
            .join(",");
        // A node that cannot bind exits at once, and another cluster on the same ports would
        // answer in its place: refuse up front.
        for id in &ids {
            for base in [options.raft_port_base, options.http_port_base] {
                let address = format!("127.0.0.1:{}", port(base, *id));
                std::net::TcpListener::bind(&address).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("{address} is not free ({e}); is another cluster running?"),
                    )
                })?;
            }
        }
        let credentials_dir = (!options.insecure).then(|| dev_credentials_dir(&options.data_dir));
        let credentials = match &credentials_dir {
            Some(dir) => {
                devcerts::generate(dir, options.nodes, &options.tls_sans)
                    .map_err(std::io::Error::other)?;
                CredentialSources {
                    dir: Some(dir.clone()),
                    ..CredentialSources::default()
                }
                .load()
                .map_err(std::io::Error::other)?
            }
            None => Credentials::default(),
        };
        let scheme = if options.insecure { "http" } else { "https" };
        let mut nodes = Vec::new();
        let mut endpoints = Vec::new();
        for id in ids {
            let http = format!("127.0.0.1:{}", port(options.http_port_base, id));
            nodes.push((
                id,
                spawn_node(options, &peers, credentials_dir.as_deref(), id)?,
            ));
            endpoints.push(format!("{scheme}://{http}"));
        }
        Ok(DevCluster {
            nodes,
            endpoints,
            options: options.clone(),
            peers,
            reported: Vec::new(),
            credentials,
            credentials_dir,
        })
    }

    /// What a client of this cluster presents: CA, client certificate and admin token
    /// (nothing when insecure).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The directory holding the cluster's credentials (`None` when insecure).
    pub fn credentials_dir(&self) -> Option<&Path> {
        self.credentials_dir.as_deref()
    }

    /// SIGKILLs node `id` (no shutdown) and waits for it to be gone.
    pub async fn kill(&mut self, id: u64) -> std::io::Result<()> {
        if let Some((_, child)) = self.nodes.iter_mut().find(|(i, _)| *i == id) {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts node `id` again with its data dir and flags (after [`DevCluster::kill`]).
    pub fn restart(&mut self, id: u64) -> std::io::Result<()> {
        let child = spawn_node(
            &self.options,
            &self.peers,
            self.credentials_dir.as_deref(),
            id,
        )?;
        if let Some((_, slot)) = self.nodes.iter_mut().find(|(i, _)| *i == id) {
            *slot = child;
        }
        self.reported.retain(|i| *i != id);
        Ok(())
    }

    /// The nodes' HTTP endpoints, by id.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The nodes' process ids, by id.
    pub fn pids(&self) -> Vec<(u64, Option<u32>)> {
        self.nodes.iter().map(|(id, c)| (*id, c.id())).collect()
    }

    /// Waits until every node answers, agrees on a leader, and that leader's URL is known;
    /// returns the leader's id.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        let options = ClientOptions {
            request_timeout: Duration::from_millis(500),
            retry_for: Duration::ZERO,
            credentials: self.credentials.clone(),
        };
        let mut last_problem = String::from("no answer yet");
        while Instant::now() < deadline {
            for (id, child) in &mut self.nodes {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("node {id} exited early ({status}); see its log"));
                }
            }
            match self.agreed_leader(&options).await {
                Ok(leader) => return Ok(leader),
                Err(problem) => last_problem = problem,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("cluster not ready in time: {last_problem}"))
    }

    async fn agreed_leader(&self, options: &ClientOptions) -> Result<u64, String> {
        let mut leader = None;
        for endpoint in &self.endpoints {
            let mut client = ClusterClient::new(std::slice::from_ref(endpoint), options.clone())
                .map_err(|e| e.to_string())?;
            let status = client.status().await.map_err(|e| e.to_string())?;
            let Some(this) = status.leader else {
                return Err(format!("{endpoint} knows no leader yet"));
            };
            if this.url.is_none() {
                return Err(format!("{endpoint} does not know the leader's URL yet"));
            }
            if leader.is_some_and(|l| l != this.id) {
                return Err("nodes disagree on the leader".into());
            }
            leader = Some(this.id);
        }
        leader.ok_or_else(|| "no nodes".into())
    }

    /// Sends SIGTERM to every node and waits for them to exit (SIGKILL after `timeout`).
    pub async fn stop(mut self, timeout: Duration) {
        for (_, child) in &self.nodes {
            if let Some(pid) = child.id() {
                terminate(pid);
            }
        }
        for (id, child) in &mut self.nodes {
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) => tracing::info!(node = *id, %status, "node exited"),
                _ => {
                    tracing::warn!(node = *id, "node did not exit in time; killing it");
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// Whether every node has exited.
    pub fn all_exited(&self) -> bool {
        self.reported.len() == self.nodes.len()
    }

    /// Nodes that exited since the last call, with their exit status.
    pub fn newly_exited(&mut self) -> Vec<(u64, String)> {
        let mut exited = Vec::new();
        for (id, child) in &mut self.nodes {
            if self.reported.contains(id) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.reported.push(*id);
                exited.push((*id, status.to_string()));
            }
        }
        exited
    }
}

/// The `serve` flags that secure node `id` with the credentials in `dir`, or `--insecure`.
fn security_args(dir: Option<&Path>, id: u64) -> Vec<String> {
    let Some(dir) = dir else {
        return vec!["--insecure".into()];
    };
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        "--ca".into(),
        path(files::CA_CERT),
        "--cert".into(),
        path(&files::node_cert(id)),
        "--key".into(),
        path(&files::node_key(id)),
        "--tokens".into(),
        path(files::TOKENS),
    ]
}

/// Starts node `id` of the cluster `options` describes.
fn spawn_node(
    options: &DevClusterOptions,
    peers: &str,
    credentials_dir: Option<&Path>,
    id: u64,
) -> std::io::Result<Child> {
    let port = |base: u16| base.saturating_add(u16::try_from(id - 1).unwrap_or(0));
    let data_dir = options.data_dir.join(format!("node-{id}"));
    let mut command = Command::new(&options.binary);
    command
        .arg("serve")
        .args(["--id", &id.to_string()])
        .arg("--data-dir")
        .arg(&data_dir)
        .args([
            "--raft-addr",
            &format!("127.0.0.1:{}", port(options.raft_port_base)),
        ])
        .args([
            "--http-addr",
            &format!("127.0.0.1:{}", port(options.http_port_base)),
        ])
        .args(["--peers", peers])
        .args(security_args(credentials_dir, id))
        .args(&options.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if !options.show_logs {
        command.stderr(Stdio::null());
    }
    command.spawn()
}

/// Asks process `pid` to stop (SIGTERM) through the `kill` utility, which keeps this crate
/// free of unsafe FFI.
pub fn terminate(pid: u32) {
    let result = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(error) = result {
        tracing::warn!(pid, %error, "cannot run `kill`");
    }
}

/// Whether `path` looks like a dev cluster's data dir (absent, or holding only `node-<i>`
/// entries and `credentials`), so `--fresh` never deletes a directory it did not make.
pub fn is_dev_data_dir(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else {
        return !path.exists();
    };
    entries.into_iter().all(|entry| {
        entry.is_ok_and(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("node-") || name == "credentials"
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `--fresh` deletes only directories made of node data dirs.
    #[test]
    fn fresh_only_deletes_dev_data_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(is_dev_data_dir(&data), "absent");
        std::fs::create_dir_all(data.join("node-2")).unwrap();
        std::fs::create_dir_all(data.join("credentials")).unwrap();
        assert!(is_dev_data_dir(&data));
        std::fs::write(data.join("precious.txt"), b"x").unwrap();
        assert!(!is_dev_data_dir(&data));
    }
}
