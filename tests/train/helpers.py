"""Train through the real Trainer on an in-memory token stream (no prepared data directory)."""

from __future__ import annotations

from pathlib import Path

from llmkit.data.windows import random_windows
from llmkit.dist.context import DistContext
from llmkit.train.config import DataConfig, OptimConfig, PretrainConfig, ScheduleConfig
from llmkit.train.objectives import CausalLM
from llmkit.train.trainer import Trainer


class StreamLoader:
    """random_windows with the loader interface the Trainer expects."""

    def __init__(self, stream, seq_len: int, batch_size: int, seed: int = 0):
        self.windows = random_windows(stream, seq_len, batch_size, seed)

    def __next__(self):
        return next(self.windows)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass  # random windows: nothing to restore


def config(steps: int, lr: float = 3e-3, seq_len: int = 32, batch_size: int = 8, **extra) -> PretrainConfig:
    return PretrainConfig(max_steps=steps, optim=OptimConfig(lr=lr), schedule=ScheduleConfig(warmup_steps=5),
                          batch=DataConfig(seq_len=seq_len, batch_size=batch_size), progress=False,
                          peak_flops=1e11, **extra)


def quick_train(model, stream, steps: int, out: Path, objective=None, **kw):
    cfg = config(steps, **kw)
    loader = StreamLoader(stream, cfg.batch.seq_len, cfg.batch.batch_size)
    trainer = Trainer(model, objective or CausalLM(), cfg, loader, DistContext(), Path(out))
    return trainer, trainer.fit()
