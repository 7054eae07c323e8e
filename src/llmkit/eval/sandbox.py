"""Running untrusted generated code (HumanEval, MBPP completions): one fresh process per program,
with a wall-clock timeout (the whole process group is killed), resource limits (address space,
CPU seconds, file size, open files, processes), no network (an empty network namespace where the
kernel allows it; sockets are refused in any case), a throw-away working directory it alone may
write to, a stripped environment, and, when llmkit runs as root, an unprivileged user. The
confinement itself runs in the child before the program: see llmkit.eval.sandbox_guard.

This contains the failure modes of generated code (loops, memory blow-ups, fork bombs, stray
writes, network calls); it is not a boundary against a determined attacker with a kernel exploit:
run untrusted benchmarks on a machine (or container) you can throw away as well.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

GUARD = Path(__file__).with_name("sandbox_guard.py")
OUTPUT_TAIL = 2000  # characters of the program's stderr kept for the results


@dataclass
class SandboxLimits:
    timeout: float = 10.0  # wall-clock seconds
    memory_mb: int = 1024  # address space
    file_mb: int = 16  # largest file the program may write
    processes: int = 1  # only its own, where the limit is enforced (not for root: see the guard)


@dataclass
class ExecResult:
    passed: bool
    status: str  # passed | failed | timeout
    stderr: str = ""


def run_program(source: str, limits: SandboxLimits | None = None) -> ExecResult:
    """Run `source` as a Python program in the sandbox; passed when it exits 0 in time."""
    limits = limits or SandboxLimits()
    workdir = Path(tempfile.mkdtemp(prefix="llmkit-sandbox-"))
    try:
        program = workdir / "program.py"
        program.write_text(source)
        spec = json.dumps({"memory_bytes": limits.memory_mb << 20, "cpu_seconds": max(1, math.ceil(limits.timeout)) + 1,
                           "file_bytes": limits.file_mb << 20, "processes": limits.processes})
        env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        with open(workdir / ".stderr", "w+b") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-B", str(GUARD), spec, str(program)], cwd=workdir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=limits.timeout)
                status = "passed" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                status = "timeout"
            finally:
                _kill_group(proc.pid)
                proc.wait()
            err.seek(0)
            stderr = err.read()[-OUTPUT_TAIL:].decode(errors="replace")
        return ExecResult(status == "passed", status, stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    """The program and anything it managed to start share its session's process group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. (arXiv 2107.03374): 1 - C(n-c, k) / C(n, k), the
    chance that k of the n samples drawn without replacement include a correct one (exact integers)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
