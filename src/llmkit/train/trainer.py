"""The training loop: AdamW, warmup + cosine learning rate, gradient clipping, a progress bar,
JSONL metrics. Every training verb runs through `train` with its own Task."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch
from tqdm.auto import tqdm

from llmkit.train.task import Task


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_minutes: float | None = None  # stop early when this wall-clock budget is spent
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class TrainResult:
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def lr_at(step: int, cfg: TrainConfig, total_steps: int | None = None) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at total_steps."""
    total_steps = total_steps or cfg.max_steps
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; matrices decay, vectors (norm weights, biases) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, foreach=True)


def planned_steps(cfg: TrainConfig, steps_done: int, seconds: float) -> int:
    """Steps the run will reach: max_steps, or fewer when the time budget runs out first.
    The LR schedule decays over this many steps, so a time-budgeted run still anneals."""
    if cfg.max_minutes is None or steps_done == 0:
        return cfg.max_steps
    return max(steps_done, min(cfg.max_steps, int(cfg.max_minutes * 60 / (seconds / steps_done))))


def train(model: torch.nn.Module, batches: Iterator, task: Task, cfg: TrainConfig,
          metrics_path: str | Path | None = None, progress: bool = True) -> TrainResult:
    optimizer, result = build_optimizer(model, cfg), TrainResult()
    metrics = open(metrics_path, "a", encoding="utf-8") if metrics_path else None
    start = time.perf_counter()
    model.train()
    total = cfg.max_steps
    bar = tqdm(total=total, desc="pretrain", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        for step in range(cfg.max_steps):
            batch = next(batches)
            if step == min(10, cfg.warmup_steps):  # estimate once the first steps are timed
                total = bar.total = planned_steps(cfg, step, result.seconds)
            lr = lr_at(step, cfg, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            result.steps, result.tokens = step + 1, result.tokens + batch[0].numel()
            result.seconds = time.perf_counter() - start
            result.losses.append(loss.item())
            record = {"step": step + 1, "loss": result.losses[-1], "lr": lr, "tokens_per_s": result.tokens_per_s}
            if metrics:
                metrics.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update()
            if cfg.max_minutes is not None and result.seconds >= cfg.max_minutes * 60:
                break
    finally:
        bar.close()
        if metrics:
            metrics.close()
    model.eval()
    return result


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, batches: Iterable, task: Task) -> float:
    """Mean loss over the batches (each weighted equally)."""
    model.eval()
    losses = [task.loss(model, batch).item() for batch in batches]
    return sum(losses) / max(1, len(losses))
