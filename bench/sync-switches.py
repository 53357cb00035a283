#!/usr/bin/env python3
"""Voluntary context switches and latency of one small append + fdatasync, into a growing
file and into preallocated (written and synced) space (BENCHMARKS.md, branch perf-lone3):
the switches a lone put's three syncs cost by themselves, which no thread hand-off change
removes. usage: bench/sync-switches.py [DIR]  (a directory on the disk under test)"""
import os, time, resource, sys
DIR = sys.argv[1] if len(sys.argv) > 1 else "."
def run(mode, n=1000):
    path = os.path.join(DIR, f"sync-switches-{mode}.dat")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if mode == "prealloc":
        os.posix_fallocate(fd, 0, 4 << 20); os.pwrite(fd, b"\0" * (4 << 20), 0); os.fsync(fd)
    buf = b"x" * 200
    r0 = resource.getrusage(resource.RUSAGE_THREAD); t = []
    for i in range(n):
        s = time.perf_counter(); os.pwrite(fd, buf, i * 200); os.fdatasync(fd); t.append(time.perf_counter() - s)
        time.sleep(0.0003)
    r1 = resource.getrusage(resource.RUSAGE_THREAD)
    t.sort(); os.close(fd); os.unlink(path)
    print(f"{mode}: p50 {t[n//2]*1e6:.0f} us, voluntary switches per sync {(r1.ru_nvcsw-r0.ru_nvcsw)/n - 1:.2f} (minus the sleep), involuntary {(r1.ru_nivcsw-r0.ru_nivcsw)/n:.2f}")
for m in ["grow", "prealloc", "grow", "prealloc"]: run(m)
print("load", open("/proc/loadavg").read().split()[0])
