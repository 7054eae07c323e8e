"""Deterministic fault injection for the fault-tolerance tests (and for rehearsing a cluster's
recovery): LLMKIT_FAULT="RANK:STEP:PHASE[:SIGNAL]" makes rank RANK send itself SIGNAL (default KILL;
STOP hangs it instead) when training step STEP reaches PHASE: forward, backward, optimizer, or
checkpoint (in the middle of writing that step's checkpoint). Only the first attempt of a torchrun
group fails (TORCHELASTIC_RESTART_COUNT 0), so the restarted group runs through. Unset: nothing."""

from __future__ import annotations

import functools
import os
import signal

PHASES = ("forward", "backward", "optimizer", "checkpoint")


@functools.cache  # read once per process: maybe_fail runs on every step's phases
def _spec() -> tuple[int, int, str, int] | None:
    raw = os.environ.get("LLMKIT_FAULT")
    if not raw or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return None
    parts = raw.split(":")
    rank, step, phase = int(parts[0]), int(parts[1]), parts[2]
    if phase not in PHASES:
        raise ValueError(f"LLMKIT_FAULT phase {phase!r}: choose one of {', '.join(PHASES)}")
    return rank, step, phase, getattr(signal, f"SIG{parts[3] if len(parts) > 3 else 'KILL'}")


def maybe_fail(phase: str, step: int, rank: int) -> None:
    """Call at each phase of step `step` (1-based); fails this process when LLMKIT_FAULT says so."""
    spec = _spec()
    if spec is not None and spec[:3] == (rank, step, phase):
        print(f"[fault] rank {rank}: {signal.Signals(spec[3]).name} at step {step}, {phase}", flush=True)
        os.kill(os.getpid(), spec[3])
