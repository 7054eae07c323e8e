"""Small C++ kernels built on first use with torch's cpp_extension (gcc + ninja; cached per CPU
model, since they are compiled with -march=native). LLMKIT_NO_KERNELS=1 disables them; callers
then use their torch fallbacks."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def cpu_tag() -> str:
    """Distinguishes builds for different instruction sets."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


@functools.cache
def build_extension(name: str, source: str):
    """The compiled extension module, or None (disabled, or the build failed: use the fallback)."""
    if os.environ.get("LLMKIT_NO_KERNELS"):
        return None
    try:
        import ninja
        from torch.utils.cpp_extension import load

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        return load(f"{name}_{cpu_tag()}", [source], extra_cflags=["-O3", "-march=native", "-fopenmp"],
                    extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # noqa: BLE001 - any build failure means: use the torch path
        log.warning("%s kernel unavailable (%s); using the torch fallback", name,
                    str(error).splitlines()[0] if str(error) else type(error).__name__)
        return None
