"""`llmkit reward train`: a Bradley-Terry reward model from preference pairs, on the one training
loop; reports pairwise accuracy (r(chosen) > r(rejected)) on held-out pairs before and after."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.dist.context import init_distributed
from llmkit.errors import LlmkitError
from llmkit.finetune.datasets import ShuffledBatches
from llmkit.finetune.preference_data import encode_pair, read_preferences
from llmkit.finetune.reward import (
    RewardModel,
    RewardTask,
    reward_batch,
    save_reward_model,
)
from llmkit.tokenizer import Tokenizer
from llmkit.train.config import OptimConfig, PretrainConfig
from llmkit.train.metrics import plot_loss_curve
from llmkit.train.trainer import Trainer


@dataclass
class RewardConfig(PretrainConfig):
    checkpoint: str = ""
    out: str = "runs/reward"
    held_out: float = 0.1
    max_steps: int = 100
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))


class RewardLoader(ShuffledBatches):
    """Endless shuffled batches of whole chosen/rejected sequences: ({...}, None)."""

    def __init__(self, pairs, batch_size: int, pad_id: int, seed: int):
        super().__init__(pairs, batch_size, lambda picked: (reward_batch(picked, pad_id), None), seed, "preference pairs")


@torch.no_grad()
def pairwise_accuracy(model: RewardModel, pairs, pad_id: int, batch_size: int = 16) -> float:
    if not pairs:
        return float("nan")
    was_training, wins = model.training, 0
    model.eval()
    for i in range(0, len(pairs), batch_size):
        batch = reward_batch(pairs[i:i + batch_size], pad_id)
        wins += int((model(batch["chosen"], batch["chosen_len"]) > model(batch["rejected"], batch["rejected_len"])).sum())
    model.train(was_training)
    return wins / len(pairs)


def run_reward(cfg: RewardConfig) -> dict:
    if not cfg.checkpoint or not cfg.data:
        raise LlmkitError("--checkpoint DIR and --data prefs.jsonl are required")
    ctx = init_distributed(cfg.parallel, cfg.device)
    if ctx.distributed:
        raise LlmkitError("reward training runs in one process for now; launch it without torchrun")
    tokenizer = Tokenizer.from_dir(cfg.checkpoint)
    torch.manual_seed(cfg.seed)
    model = RewardModel(load_checkpoint(cfg.checkpoint, device=ctx.device))
    pairs = [encode_pair(tokenizer, r, cfg.batch.seq_len) for r in read_preferences(cfg.data)]
    random.Random(cfg.seed).shuffle(pairs)
    n_held = int(len(pairs) * cfg.held_out)
    held, train = pairs[:n_held], pairs[n_held:]
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    before = pairwise_accuracy(model, held, pad)
    out = Path(cfg.out)
    trainer = Trainer(model, RewardTask(), cfg, RewardLoader(train, cfg.batch.batch_size, pad, cfg.seed), ctx, out)
    started = time.perf_counter()
    state = trainer.fit()
    after = pairwise_accuracy(model, held, pad)
    save_reward_model(model, out / "final", tokenizer)
    summary = {"steps": state.step, "pairs_trained": len(train), "pairs_held_out": len(held),
               "pairwise_accuracy_before": before, "pairwise_accuracy_after": after,
               "first_loss": state.losses[0] if state.losses else None,
               "final_loss": state.losses[-1] if state.losses else None, "seconds": time.perf_counter() - started}
    plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"[reward] held-out pairwise accuracy {before:.0%} -> {after:.0%}; reward model -> {out / 'final'}", flush=True)
    return summary
