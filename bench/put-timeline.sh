#!/bin/bash
# The timeline of one lone put (BENCHMARKS.md, branch perf-lone): starts a fresh TLS dev
# cluster of raft-kv BIN, runs a 1-client bench for 8 s, traces the syscalls of the three
# nodes and the bench for 2 s in the middle (`perf trace`), then prints, for each event
# (socket reads/writes by peer, pwrite, fdatasync), its median time after the client's
# request. Needs perf with syscall tracepoints. Tracing inflates every hop (~2.4x).
#
# usage: bench/put-timeline.sh [BIN] [WORKDIR]   (PLAINTEXT=1: the cluster runs with --insecure)
set -euo pipefail
BIN=${1:-target/release/raft-kv}
WORK=${2:-$(mktemp -d /tmp/put-timeline.XXXXXX)}
RAFT_PORT=${RAFT_PORT:-37401}
HTTP_PORT=${HTTP_PORT:-38401}
EVENTS=${EVENTS:-read,write,writev,recvfrom,sendto,fdatasync,pwrite64}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$WORK/data
mkdir -p "$D"
if [ "${PLAINTEXT:-0}" = 1 ]; then
    SECURITY=(--insecure); CLIENT=()
else
    SECURITY=(); CLIENT=(--credentials-dir "$D/credentials")
fi
"$BIN" dev-cluster --fresh --data-dir "$D" --raft-port "$RAFT_PORT" --http-port "$HTTP_PORT" \
    "${SECURITY[@]}" > "$WORK/cluster.log" 2>&1 &
CLUSTER=$!
trap 'kill $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null || true' EXIT
EP=127.0.0.1:$HTTP_PORT,127.0.0.1:$((HTTP_PORT + 1)),127.0.0.1:$((HTTP_PORT + 2))
for _ in $(seq 60); do
    "$BIN" status --endpoints "$EP" "${CLIENT[@]}" > /dev/null 2>&1 && break
    sleep 0.5
done
sleep 2
NODES=$(pgrep -P $CLUSTER | tr '\n' ' ')
"$BIN" bench --endpoints "$EP" "${CLIENT[@]}" --clients 1 --duration 8 \
    --warmup 0 --keep --json > "$WORK/bench.json" 2> "$WORK/bench.err" &
BENCH=$!
sleep 2
: > "$WORK/threads"
for p in $NODES $BENCH; do
    for t in /proc/$p/task/*; do echo "$p ${t##*/} $(cat "$t/comm")" >> "$WORK/threads"; done
done
python3 "$HERE/put-timeline.py" sockets $NODES $BENCH > "$WORK/sockets"
perf trace -T -p "$(echo $NODES $BENCH | tr ' ' ',')" -e "$EVENTS" -o "$WORK/trace.txt" \
    -- sleep 2 2> /dev/null
wait $BENCH
echo "bench: $(tr -d '\n ' < "$WORK/bench.json" | head -c 200)"
python3 "$HERE/put-timeline.py" timeline "$WORK/trace.txt" "$WORK/sockets" "$WORK/threads" \
    "$BENCH" "$RAFT_PORT" "$HTTP_PORT"
echo "(files in $WORK)"
