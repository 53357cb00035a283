#!/usr/bin/env bash
# CI sweep of the simulator: a release build of raft-sim, then the standard run (5 nodes,
# 1,000 client operations, swarm faults) for SIM_SEEDS seeds (default 0..1000) on all cores.
# Exits non-zero if any seed fails a check.
# Takes about 30 s of sweep on 2 cores (plus the build).
# Then the catch table of the broken variants over seeds 0..100; fails if one is caught by
# fewer than 10 of them (about 30 s of CPU, 20-60 s on 2 cores; SIM_BUGS=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${SIM_SEEDS:-0..1000}"
cargo build --release -p raft-sim --bin raft-sim
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/raft-sim" sweep --seeds "$seeds" --quiet
if [[ "${SIM_BUGS:-1}" == "1" ]]; then
    "$target_dir/release/raft-sim" bugs --seeds 0..100 --require 10
fi
