#!/bin/bash
# Where an operation's server CPU goes, by node and by task (BENCHMARKS.md, "Where the
# remaining CPU goes"): starts a fresh TLS dev cluster of raft-kv BIN on private ports, runs
# `raft-kv bench` against it, records the three nodes with `perf record --call-graph dwarf`
# for 4 s in the middle of the run, and prints, per node, the microseconds per operation
# spent in each task (HTTP connections, driver, disk thread, peer links, tokio) with the
# largest kinds of leaf inside each (kernel TCP, context switches, wake-ups, allocator, the
# key-value map, copies, crypto). Needs perf with call graphs; the profiler adds ~10% CPU.
#
# usage: bench/cpu-by-task.sh [BIN] [WORKDIR] [-- extra `raft-kv bench` arguments]
#        e.g. bench/cpu-by-task.sh target/release/raft-kv /tmp/cpu -- --clients 64
#        (default --clients 64; RAFT_PORT, HTTP_PORT: the first of three ports)
set -euo pipefail
BIN=${1:-target/release/raft-kv}
WORK=${2:-$(mktemp -d /tmp/cpu-by-task.XXXXXX)}
shift $(($# >= 2 ? 2 : $#))
[ "${1:-}" = "--" ] && shift
BENCH_ARGS=("$@")
[ ${#BENCH_ARGS[@]} -eq 0 ] && BENCH_ARGS=(--clients 64)
RAFT_PORT=${RAFT_PORT:-37451}
HTTP_PORT=${HTTP_PORT:-38451}
RECORD_SECONDS=4
HERE=$(cd "$(dirname "$0")" && pwd)
D=$WORK/data
rm -rf "$D"; mkdir -p "$D"
"$BIN" dev-cluster --fresh --data-dir "$D" --raft-port "$RAFT_PORT" --http-port "$HTTP_PORT" \
    > "$WORK/cluster.log" 2>&1 &
CLUSTER=$!
trap 'kill $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null || true' EXIT
EP=127.0.0.1:$HTTP_PORT,127.0.0.1:$((HTTP_PORT + 1)),127.0.0.1:$((HTTP_PORT + 2))
for _ in $(seq 60); do
    "$BIN" status --endpoints "$EP" --credentials-dir "$D/credentials" > /dev/null 2>&1 && break
    sleep 0.5
done
sleep 1
NODES=$(pgrep -P $CLUSTER | tr '\n' ',' | sed 's/,$//')
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" bench --endpoints "$EP" --credentials-dir "$D/credentials" --duration 12 --warmup 1 \
    --keep --pids "$NODES" "${BENCH_ARGS[@]}" > "$WORK/bench.txt" 2>&1 &
BENCH=$!
# Record the middle of the run: past the warm-up and the first second.
sleep 4
perf record -q -F 999 --call-graph dwarf,16384 -p "$NODES" -o "$WORK/perf.data" \
    -- sleep "$RECORD_SECONDS" > /dev/null 2>&1
wait $BENCH
grep -v '^\[run' "$WORK/bench.txt"
perf script -i "$WORK/perf.data" -F pid,tid,ip,sym 2> /dev/null > "$WORK/stacks.txt"
python3 "$HERE/cpu-by-task.py" "$WORK/stacks.txt" "$WORK/bench.txt" 999 "$RECORD_SECONDS"
echo "(files in $WORK)"
