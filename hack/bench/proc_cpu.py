"""CPU time per process from /proc, for the lab benches: where a slower case spends its time."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


class CpuMeter:
    """CPU seconds each process spends between construction and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = cpu_snapshot(pids)
        self.started = time.monotonic()
        self.used: dict[str, float] = {}
        self.span = 0.0

    def stop(self) -> None:
        self.span = time.monotonic() - self.started
        after = cpu_snapshot(self.pids)
        self.used = {name: after[name] - self.before[name] for name in self.pids}

    def per_pod_ms(self, name: str, pods: int) -> float:
        used = sum(self.used.values()) if name == "total" else self.used[name]
        return used * 1000 / pods
