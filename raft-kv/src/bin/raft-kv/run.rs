//! What each command does. Human output goes to stdout; errors and progress to stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use bytes::Bytes;
use raft_kv::server::bench::{self, BenchOptions, BenchReport, Progress};
use raft_kv::server::client::{ClientError, ClientOptions, ClusterClient, Value, WriteCondition};
use raft_kv::server::devcluster::{self, DevCluster, DevClusterOptions};
use raft_kv::server::serve;
use raft_kv::server::wire::{AddMemberBody, MembersBody, ReadConsistency, StatusBody};
use serde_json::json;
use tracing::Instrument;

use crate::cli::{BenchArgs, Cli, ClientArgs, Command, DevClusterArgs, MembersAction};

/// A failed command, as printed.
pub(crate) type CommandError = Box<dyn std::error::Error>;

pub(crate) async fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Serve(args) => {
            let config = (*args).resolve()?;
            serve::serve(config, serve::shutdown_signal()).await?;
            Ok(())
        }
        Command::DevCluster(args) => dev_cluster(args).await,
        Command::Put {
            key,
            value,
            condition,
            client,
        } => {
            let condition = write_condition(condition.if_revision, condition.if_absent);
            put(&client, &key, value, condition).await
        }
        Command::Cas {
            key,
            value,
            condition,
            client,
        } => {
            let condition = write_condition(condition.if_revision, condition.if_absent);
            put(&client, &key, value, condition).await
        }
        Command::Get {
            key,
            consistency,
            client: args,
        } => {
            let mut client = connect(&args)?;
            match client.get(key.as_bytes(), consistency).await? {
                Some(value) => print_value(&args, &key, &value),
                None => Err(format!("key `{key}` not found").into()),
            }
        }
        Command::Delete {
            key,
            condition,
            client: args,
        } => {
            let condition = write_condition(condition.if_revision, condition.if_absent);
            let mut client = connect(&args)?;
            let revision = client
                .delete(key.as_bytes(), condition)
                .await
                .map_err(explain)?;
            print_write(&args, revision)
        }
        Command::List {
            prefix,
            limit,
            start_after,
            consistency,
            client,
        } => list(&client, &prefix, start_after.as_deref(), limit, consistency).await,
        Command::Watch {
            prefix,
            from_revision,
            client,
        } => crate::watch_cmd::watch(&client, &prefix, from_revision).await,
        Command::Status { client } => status(&client).await,
        Command::Members { action, client } => members(&client, action).await,
        Command::TransferLeader { to, client: args } => {
            let mut client = connect(&args)?;
            let leader = client.transfer_leader(to).await?;
            if args.json {
                return print_json(&json!({ "leader": leader }));
            }
            println!("node {leader} is the leader");
            Ok(())
        }
        Command::Bench(args) => run_bench(args).await,
    }
}

async fn list(
    args: &ClientArgs,
    prefix: &str,
    start_after: Option<&str>,
    limit: u32,
    consistency: ReadConsistency,
) -> Result<(), CommandError> {
    let mut client = connect(args)?;
    let list = client.list(prefix, start_after, limit, consistency).await?;
    if args.json {
        return print_json(&list);
    }
    let mut out = std::io::stdout().lock();
    for entry in &list.entries {
        let key = entry.key.as_ref().or(entry.key_base64.as_ref());
        let value = entry.value.as_ref().or(entry.value_base64.as_ref());
        let (key, value) = (
            key.map_or("", String::as_str),
            value.map_or("", String::as_str),
        );
        writeln!(out, "{key}\t{value}\t(revision {})", entry.revision)?;
    }
    if list.more {
        writeln!(out, "... more keys; continue with --start-after")?;
    }
    Ok(())
}

fn write_condition(if_revision: Option<u64>, if_absent: bool) -> WriteCondition {
    match (if_revision, if_absent) {
        (Some(revision), _) => WriteCondition::Revision(revision),
        (None, true) => WriteCondition::Absent,
        (None, false) => WriteCondition::Always,
    }
}

fn connect(args: &ClientArgs) -> Result<ClusterClient, CommandError> {
    let options = ClientOptions {
        retry_for: Duration::from_secs(args.retry_secs),
        credentials: args.credentials.sources().load()?,
        ..ClientOptions::default()
    };
    Ok(ClusterClient::new(&args.endpoints, options)?)
}

/// Turns a failed condition into a sentence instead of an HTTP error dump.
fn explain(error: ClientError) -> CommandError {
    if let ClientError::Api { status: 412, body } = &error {
        let now = match (body.current, body.revision) {
            (Some(current), _) => format!("the key is at revision {}", current.revision),
            (None, _) => "the key does not exist".to_string(),
        };
        return format!("condition failed: {now}").into();
    }
    error.into()
}

async fn put(
    args: &ClientArgs,
    key: &str,
    value: String,
    condition: WriteCondition,
) -> Result<(), CommandError> {
    let mut client = connect(args)?;
    let revision = client
        .put(key.as_bytes(), Bytes::from(value), condition)
        .await
        .map_err(explain)?;
    print_write(args, revision)
}

fn print_write(args: &ClientArgs, revision: u64) -> Result<(), CommandError> {
    if args.json {
        return print_json(&json!({ "revision": revision }));
    }
    println!("OK (revision {revision})");
    Ok(())
}

fn print_value(args: &ClientArgs, key: &str, value: &Value) -> Result<(), CommandError> {
    if args.json {
        let entry = raft_kv::server::wire::ListEntry::new(key.as_bytes(), &value.value, value.meta);
        return print_json(&entry);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&value.value)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), CommandError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Asks every endpoint for its status (not only the leader), so a dead node shows too.
async fn status(args: &ClientArgs) -> Result<(), CommandError> {
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::ZERO,
        credentials: args.credentials.sources().load()?,
    };
    let mut rows: Vec<(String, Result<StatusBody, String>)> = Vec::new();
    for endpoint in &args.endpoints {
        let answer = match ClusterClient::new(std::slice::from_ref(endpoint), options.clone()) {
            Ok(mut client) => client.status().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        rows.push((endpoint.clone(), answer));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(endpoint, r)| match r {
                Ok(status) => json!({ "endpoint": endpoint, "status": status }),
                Err(error) => json!({ "endpoint": endpoint, "error": error }),
            })
            .collect();
        return print_json(&list);
    }
    println!(
        "{:<26} {:>4} {:<12} {:>6} {:>7} {:>10} {:>10}",
        "ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED"
    );
    for (endpoint, row) in &rows {
        match row {
            Ok(s) => println!(
                "{:<26} {:>4} {:<12} {:>6} {:>7} {:>10} {:>10}",
                endpoint,
                s.id,
                s.role,
                s.term,
                s.leader
                    .as_ref()
                    .map_or("-".to_string(), |l| l.id.to_string()),
                s.commit,
                s.applied
            ),
            Err(error) => println!("{endpoint:<26} unreachable: {error}"),
        }
    }
    Ok(())
}

async fn members(args: &ClientArgs, action: Option<MembersAction>) -> Result<(), CommandError> {
    let mut client = connect(args)?;
    let members = match action {
        None => client.members().await?,
        Some(MembersAction::Add {
            id,
            raft_addr,
            url,
            role,
        }) => {
            let add = AddMemberBody {
                id,
                raft_addr,
                url,
                role,
            };
            client.add_member(&add).await?
        }
        Some(MembersAction::Remove { id }) => client.remove_member(id).await?,
    };
    if args.json {
        return print_json(&members);
    }
    print_members(&members);
    Ok(())
}

fn print_members(members: &MembersBody) {
    println!("{:>4} {:<16} {:<22} URL", "ID", "ROLE", "RAFT ADDRESS");
    for m in &members.members {
        println!(
            "{:>4} {:<16} {:<22} {}",
            m.id,
            m.role,
            m.raft_addr.as_deref().unwrap_or("-"),
            m.url.as_deref().unwrap_or("-")
        );
    }
    if members.joint {
        println!("(a membership change is in progress)");
    }
}

async fn dev_cluster(args: DevClusterArgs) -> Result<(), CommandError> {
    if args.fresh && args.data_dir.exists() {
        if !devcluster::is_dev_data_dir(&args.data_dir) {
            return Err(format!(
                "{} does not look like a dev-cluster data dir; not deleting it",
                args.data_dir.display()
            )
            .into());
        }
        std::fs::remove_dir_all(&args.data_dir)?;
    }
    let options = DevClusterOptions {
        binary: std::env::current_exe()?,
        nodes: args.nodes,
        data_dir: args.data_dir.clone(),
        raft_port_base: args.raft_port,
        http_port_base: args.http_port,
        extra_args: args.serve_args,
        show_logs: true,
        insecure: args.insecure,
        tls_sans: args.tls_sans,
    };
    let mut cluster = DevCluster::start(&options)?;
    // Names the process in its own log line, as each node's lines name the node.
    let shutdown = serve::shutdown_signal().instrument(tracing::info_span!("dev_cluster"));
    tokio::pin!(shutdown);
    let leader = tokio::select! {
        ready = cluster.wait_ready(Duration::from_secs(30)) => ready,
        () = &mut shutdown => Err("interrupted".to_string()),
    };
    let leader = match leader {
        Ok(leader) => leader,
        Err(error) => {
            cluster.stop(Duration::from_secs(10)).await;
            return Err(error.into());
        }
    };
    print_dev_banner(&cluster, &args.data_dir, leader);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                for (id, status) in cluster.newly_exited() {
                    eprintln!("node {id} exited ({status}); the others keep serving. Ctrl-C stops all.");
                }
                if cluster.all_exited() {
                    return Err("every node has exited; see the logs above".into());
                }
            }
        }
    }
    eprintln!("stopping the cluster...");
    cluster.stop(Duration::from_secs(10)).await;
    eprintln!(
        "all nodes stopped; data kept in {}",
        args.data_dir.display()
    );
    Ok(())
}

fn print_dev_banner(cluster: &DevCluster, data_dir: &std::path::Path, leader: u64) {
    let endpoints = cluster.endpoints().join(",");
    println!();
    println!(
        "raft-kv dev cluster is up: {} nodes, leader is node {leader}",
        cluster.endpoints().len()
    );
    for ((id, pid), endpoint) in cluster.pids().iter().zip(cluster.endpoints()) {
        let pid = pid.map_or("?".to_string(), |p| p.to_string());
        println!(
            "  node {id}: {endpoint}  (pid {pid}, data {}/node-{id})",
            data_dir.display()
        );
    }
    let curl = curl_command(cluster);
    println!();
    if let Some(dir) = cluster.credentials_dir() {
        println!(
            "TLS and tokens are on; the CA, a client certificate and tokens are in {}.",
            dir.display()
        );
        println!(
            "The raft-kv CLI finds them when run from this directory (elsewhere: --credentials-dir)."
        );
        println!();
    }
    println!("Try (from another terminal):");
    println!(
        "  raft-kv put greeting hello           # or: {curl} -X PUT --data hello {}/v1/kv/greeting",
        cluster.endpoints()[0]
    );
    println!(
        "  raft-kv get greeting                 # or: {curl} {}/v1/kv/greeting",
        cluster.endpoints()[0]
    );
    println!("  raft-kv cas greeting hi --if-revision <revision>");
    println!(
        "  raft-kv list                         # or: {curl} '{}/v1/kv?prefix='",
        cluster.endpoints()[0]
    );
    println!("  raft-kv watch greet                  # every change under a prefix, as it happens");
    println!("  raft-kv status");
    println!("  raft-kv transfer-leader");
    println!("  raft-kv bench --clients 64 --duration 10");
    println!("  kill <pid of the leader>             # watch another node take over");
    println!();
    println!("Endpoints for scripts: RAFT_KV_ENDPOINTS={endpoints}");
    println!("Ctrl-C stops all nodes.");
}

/// `curl` with the CA and the admin token of a secured cluster.
fn curl_command(cluster: &DevCluster) -> String {
    match cluster.credentials_dir() {
        Some(dir) => {
            let dir = dir.display();
            format!(
                "curl --cacert {dir}/ca.pem -H \"Authorization: Bearer $(cat {dir}/admin.token)\""
            )
        }
        None => "curl".to_string(),
    }
}

async fn run_bench(args: BenchArgs) -> Result<(), CommandError> {
    if let Some(every) = args.kill_leader_every {
        return crate::failover::run(&args, every).await;
    }
    let mut spawned = None;
    let mut spawned_pids: Vec<u32> = Vec::new();
    let mut endpoints = args.endpoints.clone();
    let mut credentials = args.credentials.sources().load()?;
    let _data_dir = match args.spawn_cluster {
        Some(nodes) => {
            let dir = tempfile_dir()?;
            let options = DevClusterOptions {
                binary: std::env::current_exe()?,
                nodes,
                data_dir: dir.clone(),
                raft_port_base: 17001,
                http_port_base: 18001,
                extra_args: args.serve_args.clone(),
                show_logs: false,
                insecure: args.insecure,
                tls_sans: Vec::new(),
            };
            let mut cluster = DevCluster::start(&options)?;
            cluster.wait_ready(Duration::from_secs(30)).await?;
            endpoints = cluster.endpoints().to_vec();
            credentials = cluster.credentials().clone();
            spawned_pids = cluster
                .pids()
                .into_iter()
                .filter_map(|(_, pid)| pid)
                .collect();
            spawned = Some(cluster);
            Some(RemoveOnDrop(dir))
        }
        None => None,
    };
    let options = BenchOptions {
        clients: args.clients.max(1),
        duration: Duration::from_secs(args.duration.max(1)),
        warmup: Duration::from_secs(args.warmup),
        value_size: args.value_size,
        keys: args.keys.max(1),
        read_ratio: args.read_ratio,
        consistency: args.consistency,
        target: args.target,
        sessions: args.sessions,
        credentials,
        key_prefix: args.prefix.clone().unwrap_or_else(bench::run_prefix),
        keep: args.keep,
        server_pids: if !args.pids.is_empty() {
            args.pids.clone()
        } else if !spawned_pids.is_empty() {
            spawned_pids
        } else {
            raft_kv::server::cpu::find_local_nodes(&endpoints)
        },
        endpoints,
    };
    let quiet = args.json;
    let terminal = std::io::stderr().is_terminal();
    let result = bench::run(options, move |p| print_progress(p, quiet, terminal)).await;
    if let Some(cluster) = spawned {
        cluster.stop(Duration::from_secs(10)).await;
    }
    let report = result?;
    eprintln!();
    if args.json {
        return print_json(&report);
    }
    print_report(&report);
    Ok(())
}

/// One progress line a second: rewritten in place on a terminal, one line each otherwise
/// (so a log file or a CI transcript gets clean lines, not `\r`-joined ones).
fn print_progress(p: Progress, quiet: bool, terminal: bool) {
    if quiet {
        return;
    }
    let phase = if p.warming_up { "warmup" } else { "run" };
    let line = format!(
        "[{phase} {:>4.0}s] {:>9.0} ops/s   {:>10} ops   {:>6} errors",
        p.elapsed.as_secs_f64(),
        p.ops_per_sec,
        p.ops,
        p.errors
    );
    if terminal {
        eprint!("\r{line}   ");
    } else {
        eprintln!("{line}");
    }
    let _ = std::io::stderr().flush();
}

fn print_report(r: &BenchReport) {
    println!(
        "{} clients, {:.1} s: {:.0} ops/s ({} ops, {} writes, {} errors)",
        r.clients, r.seconds, r.ops_per_sec, r.ops, r.writes, r.errors
    );
    println!(
        "latency: p50 {:.3} ms   p99 {:.3} ms   p99.9 {:.3} ms   max {:.3} ms   mean {:.3} ms",
        r.p50_us as f64 / 1000.0,
        r.p99_us as f64 / 1000.0,
        r.p999_us as f64 / 1000.0,
        r.max_us as f64 / 1000.0,
        r.mean_us / 1000.0
    );
    if let Some(error) = &r.first_error {
        println!("first error: {error}");
    }
    if !r.error_kinds.is_empty() {
        println!("errors by kind (warm-up included; s from the start of measuring):");
    }
    for kind in &r.error_kinds {
        println!(
            "  {:>7} {} ({:.1} s .. {:.1} s): {}",
            kind.count, kind.kind, kind.first_at_s, kind.last_at_s, kind.example
        );
    }
    if r.leader_changes > 0 {
        let at: Vec<String> = r
            .leader_changes_at_s
            .iter()
            .map(|s| format!("{s:.1} s"))
            .collect();
        println!(
            "leadership moved {} times during the run (the clients followed), seen at {}",
            r.leader_changes,
            at.join(", ")
        );
    }
    let per_op = |us: Option<f64>| us.map_or("n/a".to_string(), |us| format!("{us:.1} us"));
    println!(
        "cpu per op: {} on {} local server processes, {} in this client",
        per_op(r.server_cpu_us_per_op),
        r.server_processes,
        per_op(r.client_cpu_us_per_op)
    );
    for process in &r.server_detail {
        let switches = process
            .switches_per_op
            .map_or("n/a".to_string(), |s| format!("{s:.2}"));
        println!(
            "  pid {}{}: {:.1} us, {switches} context switches per op",
            process.pid,
            if process.leader_at_start {
                " (leader)"
            } else {
                ""
            },
            process.cpu_us_per_op
        );
    }
    match r.keys_removed {
        Some(n) => println!(
            "removed {n} keys under {} (--keep keeps them)",
            r.key_prefix
        ),
        None => println!("kept the keys under {}", r.key_prefix),
    }
}

/// A fresh directory under the system temp dir for a spawned cluster.
pub(crate) fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "raft-kv-bench-{}-{}",
        std::process::id(),
        raft_kv::server::client::random_u64() % 1_000_000
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes the spawned cluster's data when the bench ends.
pub(crate) struct RemoveOnDrop(pub(crate) std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
