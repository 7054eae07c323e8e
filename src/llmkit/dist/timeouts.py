"""A hung or stopped rank turns into a clear error, not a silent hang: every collective waits at
most the process-group timeout (`--parallel.timeout_s`); when one times out, each surviving rank
checks in on the rendezvous store (torchrun's TCPStore, which does not depend on the collective
that failed) and, after a short grace period, names the ranks that never checked in: those are
the hung or stopped ones."""

from __future__ import annotations

import time

import torch.distributed as dist

from llmkit.errors import LlmkitError

TIMEOUT_MARKERS = ("timed out", "timeout", "pair closure")
KEY = "llmkit/collective-timeout/{}"


def collective_timed_out(error: BaseException) -> bool:
    text = str(error).lower()
    return any(marker in text for marker in TIMEOUT_MARKERS)


def missing_ranks(rank: int, world_size: int, grace_s: float) -> list[int] | None:
    """Ranks that do not check in within grace_s of this one (None: the store is unreachable too)."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(KEY.format(rank), "1")
        deadline = time.monotonic() + grace_s
        while True:
            missing = [r for r in range(world_size) if not store.check([KEY.format(r)])]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.2)
    except (RuntimeError, ValueError, AttributeError):
        return None


def explain_timeout(ctx, error: BaseException, step: int) -> LlmkitError:
    timeout_s = ctx.timeout_s
    missing = missing_ranks(ctx.rank, ctx.world_size, grace_s=min(30.0, max(5.0, timeout_s)))
    who = (f"rank {', '.join(map(str, missing))} never reached it (hung, stopped or dead)" if missing else
           "a peer rank is hung, stopped or far slower")
    first_line = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    return LlmkitError(f"rank {ctx.rank}: a collective at step {step} waited past the process-group timeout "
                       f"({timeout_s:g} s, --parallel.timeout_s): {who}. ({first_line})")
