#!/bin/bash
# Context switches per lone put by process and thread, voluntary (the thread blocked: a
# parked wait, a futex, a sync's I/O waits) apart from involuntary (preempted: load), over a
# 1-client bench on a fresh TLS dev cluster (BENCHMARKS.md, branch perf-lone3). Puts are
# counted with the warm-up (the keys the bench removes), as the thread counters run all along.
#
# usage: bench/lone-threads.sh [BIN] [DATA_DIR]   (RAFT_PORT, HTTP_PORT: first of three)
set -euo pipefail
BIN=${1:-target/release/raft-kv}
D=${2:-$(mktemp -d /tmp/lone-threads.XXXXXX)/data}
RAFT_PORT=${RAFT_PORT:-37401}
HTTP_PORT=${HTTP_PORT:-38401}
rm -rf "$D"; mkdir -p "$D"
"$BIN" dev-cluster --fresh --data-dir "$D" --raft-port "$RAFT_PORT" --http-port "$HTTP_PORT" > "$D.cluster.log" 2>&1 &
CL=$!
trap 'kill $CL 2>/dev/null; wait $CL 2>/dev/null || true' EXIT
EP=127.0.0.1:$HTTP_PORT,127.0.0.1:$((HTTP_PORT + 1)),127.0.0.1:$((HTTP_PORT + 2))
for _ in $(seq 60); do "$BIN" status --endpoints "$EP" --credentials-dir "$D/credentials" >/dev/null 2>&1 && break; sleep 0.5; done
sleep 1
PIDS=$(pgrep -P $CL | tr '\n' ' ')
snap() { for p in $PIDS; do for t in /proc/$p/task/*; do
  echo "$p $(cat $t/comm | tr ' ' _) $(awk '/^voluntary_ctxt/{v=$2} /nonvoluntary_ctxt/{n=$2} END{print v, n}' $t/status)"; done; done; }
snap > "$D.sw0"
echo "load: $(cut -d' ' -f1 /proc/loadavg)"
"$BIN" bench --endpoints "$EP" --credentials-dir "$D/credentials" --clients 1 --duration 6 --warmup 1 --pids "$(echo $PIDS | tr ' ' ',')" > "$D.bench" 2>&1
snap > "$D.sw1"
grep -v '^\[run' "$D.bench"
C=$(grep -o 'removed [0-9]*' "$D.bench" | awk '{print $2}')
python3 - "$D.sw0" "$D.sw1" "${C:-0}" <<'PY'
import sys
a={}; b={}
for f,d in ((sys.argv[1],a),(sys.argv[2],b)):
    for l in open(f):
        p,n,v,nv=l.split(); x=d.setdefault((p,n),[0,0]); x[0]+=int(v); x[1]+=int(nv)
c=float(sys.argv[3]) or 1
tv=tn=0
for k in sorted(b):
    v=b[k][0]-a.get(k,[0,0])[0]; n=b[k][1]-a.get(k,[0,0])[1]; tv+=v; tn+=n
    if v+n>100: print(k[0], k[1], "vol/put %.2f invol/put %.2f" % (v/c, n/c))
print("puts %d, switches per put %.2f (voluntary %.2f)" % (c, (tv+tn)/c, tv/c))
PY
echo "load: $(cut -d' ' -f1 /proc/loadavg)"
