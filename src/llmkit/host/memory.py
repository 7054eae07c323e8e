"""This process's resident and peak memory, read from Linux /proc, for per-stage measurements."""

from __future__ import annotations

from pathlib import Path


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
