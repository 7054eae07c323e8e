"""Learning-rate schedules, as a multiplier of the peak rate at each step.

    cosine  warmup, then half a cosine down to min_lr_ratio at the last step
    wsd     warmup-stable-decay (MiniCPM, arXiv 2404.06395): warmup, flat, then a linear decay over
            the last decay_fraction of steps; a run can be extended from any stable-phase checkpoint
    linear  warmup, then a straight line down to min_lr_ratio
"""

from __future__ import annotations

import math

from llmkit.train.config import ScheduleConfig

DEFAULT_WARMUP = 100


def lr_multiplier(step: int, total_steps: int, cfg: ScheduleConfig) -> float:
    warmup = DEFAULT_WARMUP if cfg.warmup_steps is None else cfg.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    floor = cfg.min_lr_ratio
    if cfg.kind == "constant":
        return 1.0
    if cfg.kind == "wsd":
        decay_start = total_steps - int(cfg.decay_fraction * total_steps)
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1, total_steps - decay_start)
        return 1.0 - (1.0 - floor) * min(1.0, progress)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    if cfg.kind == "linear":
        return 1.0 - (1.0 - floor) * progress
    return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def shorten_default_warmup(cfg) -> str | None:
    """Resolve the default warmup: 100 steps, or 10% of a shorter run (a 100-step warmup in a 30-step
    run never reaches the learning rate asked for). Returns a notice when it was shortened. A warmup
    given explicitly is kept."""
    if cfg.schedule.warmup_steps is not None:
        return None
    cfg.schedule.warmup_steps = min(DEFAULT_WARMUP, max(1, cfg.max_steps // 10))
    if cfg.schedule.warmup_steps == DEFAULT_WARMUP:
        return None
    return (f"the default warmup of {DEFAULT_WARMUP} steps is longer than 10% of --max-steps {cfg.max_steps}: "
            f"using {cfg.schedule.warmup_steps} (set --schedule.warmup-steps to choose)")
