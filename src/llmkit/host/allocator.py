"""Keep freed host memory for reuse instead of returning it to the kernel.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and
unmaps it on free, so a training step whose logits, their gradient and the attention buffers are
tens of MiB each page-faults and zero-fills them again on every step. Raising the mmap and trim
thresholds keeps those pages in the heap: measured 5-7% faster CPU training steps (see
docs/benchmarks.md). PyTorch's CPU tuning guide gets the same effect by preloading jemalloc or
tcmalloc; this needs no extra library. It affects the whole process and is a no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

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
