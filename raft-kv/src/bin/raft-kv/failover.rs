//! `raft-kv bench --spawn-cluster N --kill-leader-every SECS`: the failover benchmark.

use std::time::Duration;

use raft_kv::server::devcluster::{DevCluster, DevClusterOptions};
use raft_kv::server::failover::{self, FailoverOptions, FailoverReport};

use crate::cli::BenchArgs;
use crate::run::{CommandError, RemoveOnDrop, print_json, tempfile_dir};

pub(crate) async fn run(args: &BenchArgs, every_secs: u64) -> Result<(), CommandError> {
    let nodes = args
        .spawn_cluster
        .ok_or("--kill-leader-every needs --spawn-cluster N: it kills processes it started")?;
    let dir = tempfile_dir()?;
    let _remove = RemoveOnDrop(dir.clone());
    let options = DevClusterOptions {
        binary: std::env::current_exe()?,
        nodes,
        data_dir: dir,
        raft_port_base: 17001,
        http_port_base: 18001,
        extra_args: args.serve_args.clone(),
        show_logs: false,
        insecure: args.insecure,
        tls_sans: Vec::new(),
    };
    let mut cluster = DevCluster::start(&options)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let options = FailoverOptions {
        clients: args.clients.max(1),
        duration: Duration::from_secs(args.duration.max(1)),
        kill_every: Duration::from_secs(every_secs.max(1)),
        down_for: Duration::from_millis(500),
        value_size: args.value_size,
        keys: args.keys.max(1),
    };
    let quiet = args.json;
    let result = failover::run(&mut cluster, options, |event| {
        if !quiet {
            eprintln!("{event}");
        }
    })
    .await;
    cluster.stop(Duration::from_secs(10)).await;
    let report = result?;
    if args.json {
        return print_json(&report);
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &FailoverReport) {
    let elections: Vec<f64> = r.kills.iter().filter_map(|k| k.new_leader_ms).collect();
    let mean_election = elections.iter().sum::<f64>() / elections.len().max(1) as f64;
    println!(
        "{} kills of the leader; new leader seen after {mean_election:.0} ms on average",
        r.kills.len()
    );
    println!(
        "client-visible gap per kill and client: p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms   ({} never closed)",
        r.gap_p50_ms, r.gap_p99_ms, r.gap_max_ms, r.gaps_open
    );
    println!(
        "writes: {} ok, {} unknown outcome, {} certainly not applied",
        r.writes_ok, r.writes_unknown, r.writes_not_applied
    );
    if let Some(error) = &r.first_error {
        println!("first error: {error}");
    }
}
