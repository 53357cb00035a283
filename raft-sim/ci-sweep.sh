#!/usr/bin/env bash
# CI sweep of the simulator: a release build of raft-sim, then the standard run (5 nodes,
# 1,000 client operations, swarm faults) on both stores the simulator runs the production
# host engine on: SIM_SEEDS seeds (default 0..1000) on MemStorage and SIM_FILE_SEEDS seeds
# (default 0..500) on FileStorage over the simulated disk (torn writes, bit flips, failing
# fsyncs, a full disk), on all cores. Exits non-zero if any seed fails a check.
# Takes about 70-110 s of sweep on 2 loaded cores (plus the build).
# Then the catch table of the planted bugs over seeds 0..100; fails if one is caught by
# fewer than 10 of them (about 25 s of CPU, 20-25 s on 2 cores at load 7; SIM_BUGS=0
# skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${SIM_SEEDS:-0..1000}"
file_seeds="${SIM_FILE_SEEDS:-0..500}"
cargo build --release -p raft-sim-kv --bin raft-sim
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/raft-sim" sweep --seeds "$seeds" --storage memory --quiet
"$target_dir/release/raft-sim" sweep --seeds "$file_seeds" --storage file --quiet
if [[ "${SIM_BUGS:-1}" == "1" ]]; then
    "$target_dir/release/raft-sim" bugs --seeds 0..100 --require 10
fi
