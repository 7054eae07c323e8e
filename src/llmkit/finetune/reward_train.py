"""`llmkit reward train`: a Bradley-Terry reward model from preference pairs, on the one training
loop; reports pairwise accuracy (r(chosen) > r(rejected)) on held-out pairs before and after."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llmkit.errors import LlmkitError
from llmkit.finetune.datasets import ShuffledBatches
from llmkit.finetune.preference_data import split_pairs
from llmkit.finetune.reward import (
    RewardModel,
    RewardTask,
    reward_batch,
    save_reward_model,
)
from llmkit.finetune.run import data_parallel, finish_run, fit_resumable, load_tuned
from llmkit.train.config import OptimConfig, RunConfig
from llmkit.train.trainer import Trainer


@dataclass
class RewardConfig(RunConfig):
    """`llmkit reward train`: the training loop's settings plus the base checkpoint and preference pairs."""

    checkpoint: str = ""
    data: str = ""  # preference pairs JSONL ({"prompt", "chosen", "rejected"})
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
    body, tokenizer, ctx, _, _ = load_tuned(cfg, "full")
    model = RewardModel(body)
    held, train = split_pairs(tokenizer, cfg.data, cfg.batch.seq_len, cfg.held_out, cfg.seed)
    pad = tokenizer.padding_id
    before = pairwise_accuracy(model, held, pad)
    out = Path(cfg.out)
    trained, loader = data_parallel(model, cfg, ctx, RewardLoader(train, cfg.batch.batch_size, pad, cfg.seed))
    trainer = Trainer(trained, RewardTask(), cfg, loader, ctx, out)
    started = time.perf_counter()
    state = fit_resumable(trainer, cfg, tokenizer)
    after = pairwise_accuracy(model, held, pad)
    if ctx.is_main:
        save_reward_model(model, out / "final", tokenizer)
    summary = finish_run(out, state, started, ctx, world_size=ctx.world_size, pairs_trained=len(train), pairs_held_out=len(held),
                         pairwise_accuracy_before=before, pairwise_accuracy_after=after)
    if ctx.is_main:
        print(f"[reward] held-out pairwise accuracy {before:.0%} -> {after:.0%}; reward model -> {out / 'final'}", flush=True)
    return summary
