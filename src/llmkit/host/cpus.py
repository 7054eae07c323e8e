"""How many CPU threads torch should use: the CPUs this process may actually run on.

`os.cpu_count()` reports the machine's CPUs, not the process's share: a container limited by a
cgroup CPU quota, or a process pinned by `taskset`/affinity, would run that many threads on fewer
cores and lose time to oversubscription. The share is the smallest of the affinity set and the
cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), split between the ranks torchrun starts on
this node. `--threads N` on any verb, or the LLMKIT_THREADS environment variable, overrides it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup quota, or None when unlimited or unknown."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.is_file():
            quota = int(v1.read_text())
            period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def available_cpus() -> int:
    """CPUs this process can use: affinity and cgroup quota, divided among local torchrun ranks."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def set_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (given, else $LLMKIT_THREADS, else available_cpus()); returns it."""
    import torch

    from_env = os.environ.get("LLMKIT_THREADS", "")
    count = threads or (int(from_env) if from_env.isdigit() and int(from_env) > 0 else available_cpus())
    torch.set_num_threads(count)
    return count
