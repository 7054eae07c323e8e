"""Keep freed host memory for reuse instead of returning it to the kernel.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and
unmaps it on free, so a training step whose logits, their gradient and the attention buffers are
tens of MiB each page-faults and zero-fills them again on every step. Raising the mmap and trim
thresholds keeps those pages in the heap: measured 5-7% faster CPU training steps (see
docs/benchmarks.md). PyTorch's CPU tuning guide gets the same effect by preloading jemalloc or
tcmalloc; this needs no extra library. It affects the whole process and is a no-op off glibc.

Also: reading this process's resident and peak memory (Linux /proc), for per-stage measurements.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # bytes: allocations below 1 GiB come from (and return to) the reusable heap


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when it took effect."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))


def process_memory_bytes(field: str = "VmHWM") -> int | None:
    """A memory figure of this process from /proc/self/status (VmRSS: resident now; VmHWM: the peak
    since start or the last `reset_peak_memory`), in bytes; None off Linux."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return None


def reset_peak_memory() -> bool:
    """Make VmHWM start again from the current resident size (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
