#!/usr/bin/env python3
"""Folds `perf script -F pid,tid,ip,sym` call stacks of raft-kv nodes into microseconds per
operation by node, task and kind of leaf (see bench/cpu-by-task.sh).

usage: cpu-by-task.py STACKS BENCH_OUTPUT SAMPLE_HZ RECORD_SECONDS

Operations in the recorded window are taken as the bench's average rate times the window,
so the figures carry the bench's own spread; the profiler's cost is included.
"""
import collections
import re
import sys

# First match wins, tried against the whole stack (root to leaf): what kind of work a
# sample belongs to. Snapshots come first: the driver spawns them, so its frames are on
# their stacks too.
TASKS = [
    (r"raft_host::snapshot::", "snapshots"),
    (r"run_disk", "disk thread"),
    (r"run_apply", "apply thread"),
    (r"LaneWriter", "peer link writers"),
    (r"raft_transport_tcp::inbound", "peer inbound readers"),
    (r"raft_runtime::driver", "driver (engine, inline apply and syncs)"),
    (r"limits::Connection|hyper::", "HTTP connections"),
    (r"park|Parker|epoll_wait", "tokio parked"),
    (r"multi_thread::worker", "tokio scheduling"),
]

# Inside a task, what the sample was doing: the state machine's apply by any frame of the
# stack (its cost is cache misses spread over many leaf functions), the rest by the leaf.
APPLY = r"raft_kv::store::Store::execute|KvStateMachine::execute"
LEAVES = [
    (r"memmove|memcpy|copy_folio|_copy_(to|from)_iter", "copies"),
    (r"finish_task_switch", "context switches"),
    (r"_raw_spin_unlock", "wake-ups"),
    (r"iowrite16", "virtio kick"),
    (r"clear_page|page_fault|handle_mm_fault|do_anonymous", "page faults"),
    (r"tcp|skb|^ip_|__dev_|loopback|net_rx|sock_|inet_|softirq", "kernel TCP"),
    (r"^_?mi_|mimalloc", "allocator"),
    (r"aes|gcm|ring_core|rustls", "TLS"),
    (r"crc32c", "crc32c"),
]


def read_stacks(path):
    samples, current = [], None
    with open(path, errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            if not line.startswith("\t"):
                if current:
                    samples.append(current)
                current = (line.split()[0].split("/")[0], [])
                continue
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and current:
                current[1].append(parts[1].replace(" (inlined)", ""))
    if current:
        samples.append(current)
    return samples


def first_match(patterns, text, default):
    for pattern, name in patterns:
        if re.search(pattern, text):
            return name
    return default


def main():
    stacks, bench, hz, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    text = open(bench).read()
    rate = re.search(r": (\d+) ops/s", text)
    if not rate:
        sys.exit("no ops/s line in the bench output")
    ops = int(rate.group(1)) * seconds
    roles = {pid: "leader" for pid in re.findall(r"pid (\d+) \(leader\)", text)}
    us_per_sample = 1e6 / hz / ops

    by_task = collections.defaultdict(collections.Counter)
    by_leaf = collections.defaultdict(collections.Counter)
    for pid, frames in read_stacks(stacks):
        if not frames:
            continue
        task = first_match(TASKS, " | ".join(frames), "other")
        by_task[pid][task] += 1
        if any(re.search(APPLY, frame) for frame in frames):
            kind = "key-value apply"
        else:
            kind = first_match(LEAVES, frames[0], "other")
        by_leaf[(pid, task)][kind] += 1

    total = sum(sum(tasks.values()) for tasks in by_task.values())
    print(f"{ops:.0f} operations in the {seconds:.0f} s window, "
          f"{total * us_per_sample:.1f} us of server CPU per operation (profiler included)")
    followers = 0
    for pid in sorted(by_task, key=lambda p: (roles.get(p) != "leader", p)):
        if pid not in roles:
            followers += 1
            roles[pid] = f"follower {followers}"
        tasks = by_task[pid]
        print(f"\n{roles[pid]} (pid {pid}): {sum(tasks.values()) * us_per_sample:.1f} us per operation")
        for task, count in tasks.most_common():
            share = count * us_per_sample
            if share < 0.1:
                continue
            leaves = ", ".join(
                f"{leaf} {n * us_per_sample:.1f}"
                for leaf, n in by_leaf[(pid, task)].most_common()
                if leaf != "other" and n * us_per_sample >= 0.2
            )
            print(f"  {task:42s} {share:6.1f}" + (f"   ({leaves})" if leaves else ""))


if __name__ == "__main__":
    main()
