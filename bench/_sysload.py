"""How much CPU other processes used while we timed something (Linux /proc), so runs on a shared
machine can flag, wait out or drop contended repetitions. Elsewhere everything reads 0."""
import os
import time

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _snapshot():
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        busy = sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # minus idle and iowait
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])  # utime + stime, all threads
        return busy, own, time.perf_counter()
    except (OSError, ValueError, IndexError):
        return None


def foreign_cores(before, after):
    """Average number of cores busy with other processes between two snapshots."""
    if before is None or after is None or after[2] <= before[2]:
        return 0.0
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / _TICK / (after[2] - before[2]))


def timed(fn):
    """(seconds, cores used by other processes meanwhile)."""
    s0 = _snapshot()
    t = time.perf_counter()
    fn()
    t = time.perf_counter() - t
    return t, foreign_cores(s0, _snapshot())


def wait_quiet(max_wait, threshold=0.25, window=0.3):
    """Sleeps until other processes use under `threshold` cores over a `window`, or until
    `max_wait` seconds have passed. Returns (seconds waited, last foreign load)."""
    start = time.perf_counter()
    load = 0.0
    while True:
        s0 = _snapshot()
        time.sleep(window)
        load = foreign_cores(s0, _snapshot())
        waited = time.perf_counter() - start
        if load < threshold or waited >= max_wait:
            return waited, load
