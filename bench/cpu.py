"""Who used the CPU during a load run: the server (every process of its process group), the
load generator (a child of the bench, counted once it has been waited for) and the whole
machine (/proc/stat), each in cores (CPU seconds per second of the run)."""
from __future__ import annotations

import os
import resource
import time

_TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds so far of the live processes in process group `pgid`."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def group_rss_kib(pgid: int) -> int:
    """Resident memory (VmRSS) of the live processes in process group `pgid`, summed."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def _machine() -> tuple[float, float]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) / _TICK, (values[3] + values[4]) / _TICK  # all, idle + iowait


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Started before a load run, read after it (once the generator has been waited for)."""

    def __init__(self, server_pgid: int | None) -> None:
        self._pgid = server_pgid
        self._wall = time.monotonic()
        self._server = group_cpu_s(server_pgid) if server_pgid else 0.0
        self._children = _children_cpu_s()
        self._machine = _machine()
        self.load_before = round(os.getloadavg()[0], 2)

    def read(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        total, idle = _machine()
        out = {
            "generator_cores": round((_children_cpu_s() - self._children) / wall, 2),
            "machine_cores": round(((total - self._machine[0]) - (idle - self._machine[1])) / wall, 2),
            "load_before": self.load_before,
        }
        if self._pgid:
            out["server_cores"] = round((group_cpu_s(self._pgid) - self._server) / wall, 2)
        return out
