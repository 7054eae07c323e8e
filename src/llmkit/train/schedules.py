"""Learning-rate schedules, as a multiplier of the peak rate at each step.

    cosine  warmup, then half a cosine down to min_lr_ratio at the last step
    wsd     warmup-stable-decay (MiniCPM, arXiv 2404.06395): warmup, flat, then a linear decay over
            the last decay_fraction of steps; a run can be extended from any stable-phase checkpoint
    linear  warmup, then a straight line down to min_lr_ratio
"""

from __future__ import annotations

import math

from llmkit.train.config import ScheduleConfig


def lr_multiplier(step: int, total_steps: int, cfg: ScheduleConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
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
