#!/usr/bin/env python3
"""Helper of bench/put-timeline.sh.

  put-timeline.py sockets PID...        prints "pid fd local_port remote_port" per TCP socket
  put-timeline.py timeline TRACE SOCKETS THREADS CLIENT_PID RAFT_PORT HTTP_PORT
      prints the median time (us) after the client's request write of the first
      occurrence of each event, over every request in the trace.
"""
import collections
import glob
import os
import re
import statistics
import sys


def sockets(pids):
    inode_ports = {}
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            p = l.split()
            lp = int(p[1].split(":")[1], 16)
            rp = int(p[2].split(":")[1], 16)
            inode_ports[p[9]] = (lp, rp)
    for pid in pids:
        for fd in glob.glob(f"/proc/{pid}/fd/*"):
            try:
                t = os.readlink(fd)
            except OSError:
                continue
            if t.startswith("socket:[") and t[8:-1] in inode_ports:
                lp, rp = inode_ports[t[8:-1]]
                print(pid, fd.rsplit("/", 1)[1], lp, rp)


def timeline(trace, fdmapf, tidmapf, client, raft_port, http_port):
    raft_port, http_port = int(raft_port), int(http_port)
    raft = range(raft_port, raft_port + 3)
    http = range(http_port, http_port + 3)
    fdl = {}
    ports_of = {}
    for l in open(fdmapf):
        pid, fd, lp, rp = l.split()
        fdl[(pid, fd)] = (int(lp), int(rp))
        ports_of[int(lp)] = pid
    tid2pid, tname = {}, {}
    for l in open(tidmapf):
        pid, tid, name = l.rstrip("\n").split(" ", 2)
        tid2pid[tid] = pid
        tname[tid] = name
    node = {client: "C"}
    for (pid, fd), (lp, rp) in fdl.items():
        if lp in http:
            node[pid] = "n%d" % (lp - http_port + 1)

    def label(pid, fd):
        k = fdl.get((pid, fd))
        if not k:
            return None
        lp, rp = k
        if lp in http or rp in http:
            return "http"
        if rp in raft:
            return "out->n%d" % (rp - raft_port + 1)
        if lp in raft:
            return "in<-%s" % node.get(ports_of.get(rp), "?")
        return None
    rx = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): (.*?)/(\d+) (\w+)\((.*)\)\s+= (-?\d+)")
    rstart = re.compile(r"^\s*([\d.]+) \(\s*\): (.*?)/(\d+) (\w+)\((.*)\)\s+\.\.\.")
    rcont = re.compile(r"^\s*(\?|[\d.]+) \(\s*([\d.]*)\s*(?:ms)?\): (.*?)/(\d+)\s+\.\.\. \[continued\]: (\w+)\(\)\)\s+= (-?\d+)")
    events = []
    pending = {}
    last_ts = 0.0
    def parsed():
        nonlocal last_ts
        for l in open(trace):
            m = rx.match(l)
            if m:
                last_ts = float(m.group(1)); yield m.groups(); continue
            m = rstart.match(l)
            if m:
                ts, comm, tid, sc, args = m.groups(); last_ts = float(ts)
                pending[tid] = (float(ts), sc, args); continue
            m = rcont.match(l)
            if m:
                ts, dur, comm, tid, sc, ret = m.groups()
                st = pending.pop(tid, None)
                if ts != "?" and dur:
                    args = st[2] if st and st[1] == sc else ""
                    last_ts = float(ts); yield (ts, dur, comm, tid, sc, args, ret)
                elif st and st[1] == sc:
                    yield (str(st[0]), str(max(0.0, last_ts - st[0])), comm, tid, sc, st[2], ret)
    for g in parsed():
        ts, dur, comm, tid, sc, args, ret = g
        pid = tid2pid.get(tid)
        if pid is None: continue
        ts = float(ts); dur = float(dur); ret = int(ret)
        fdm = re.search(r"fd: (\d+)", args)
        fd = fdm.group(1) if fdm else None
        nd = node.get(pid, "?"); th = tname.get(tid, "?")
        lab = label(pid, fd) if fd else None
        if sc in ("read", "recvfrom", "recvmsg") and lab and ret > 0:
            events.append((ts + dur, nd, f"{nd} read {lab} done"))
        elif sc in ("write", "writev", "sendto", "sendmsg") and lab and ret > 0:
            events.append((ts, nd, f"{nd} write {lab} start"))
        elif sc in ("fdatasync", "fsync"):
            events.append((ts, nd, f"{nd} fdatasync start"))
            events.append((ts + dur, nd, f"{nd} fdatasync end"))
        elif sc == "epoll_wait" and ret > 0 and dur > 0.002:
            events.append((ts + dur, nd, f"{nd} {th} wakes(epoll)"))
        elif sc == "futex" and "WAIT" in args and dur > 0.002:
            events.append((ts + dur, nd, f"{nd} {th} wakes(futex)"))
        elif sc == "pwrite64" or (sc == "write" and not lab and th.startswith("raft-disk")):
            events.append((ts, nd, f"{nd} {th} diskwrite start"))
    events.sort()
    anchors = [t for t, nd, lab in events if lab == "C write http start"]
    per = collections.defaultdict(list)
    ncyc = 0
    cyc_len = []
    for a, b in zip(anchors, anchors[1:]):
        seen = {}
        for t, nd, lab in events:
            if t < a: continue
            if t >= b: break
            seen.setdefault(lab, t - a)
        ncyc += 1; cyc_len.append(b - a)
        for lab, dt in seen.items(): per[lab].append(dt * 1000)
    print(f"cycles {ncyc}, median cycle {statistics.median(cyc_len)*1000:.0f} us, p10 {sorted(cyc_len)[len(cyc_len)//10]*1000:.0f} p90 {sorted(cyc_len)[9*len(cyc_len)//10]*1000:.0f}")
    rows = [(statistics.median(v), lab, len(v)) for lab, v in per.items() if len(v) >= 0.5 * ncyc]
    for med, lab, n in sorted(rows):
        print(f"{med:8.0f} us  {lab}  ({100*n//ncyc}%)")


if __name__ == "__main__":
    if sys.argv[1] == "sockets":
        sockets(sys.argv[2:])
    else:
        timeline(*sys.argv[2:8])
