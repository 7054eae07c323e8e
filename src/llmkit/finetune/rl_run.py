"""`llmkit align --method ppo|grpo`: on-policy RL on the one training loop. Prompts come from JSONL
(`prompt`, plus whatever the reward reads, e.g. `answer`; preference files work too, their prompts
are used); rewards from a reward model (`--reward-model DIR`) or a reward function
(`--reward-fn exact_match|contains_answer|answer_prefix|safe_response|module:function`).

A held-out share of the prompts measures the mean reward of sampled completions (4 per prompt, at
the rollout temperature: the policy's expected reward) before and after.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from llmkit.finetune.datasets import read_prompts
from llmkit.finetune.grpo import GRPOTask
from llmkit.finetune.ppo import ActorCritic, PPOSettings, PPOTask
from llmkit.finetune.reward import load_reward_model
from llmkit.finetune.rollouts import PromptLoader, RewardFn
from llmkit.finetune.run import (
    data_parallel,
    export_tuned,
    finish_run,
    fit_resumable,
    load_tuned,
)
from llmkit.finetune.verifiable_rewards import resolve_reward_fn, reward_model_fn
from llmkit.train.trainer import Trainer


def build_reward(cfg, tokenizer, device) -> RewardFn:
    if cfg.reward_model:
        return reward_model_fn(load_reward_model(cfg.reward_model, device=str(device)), tokenizer)
    return resolve_reward_fn(cfg.reward_fn)


@torch.no_grad()
def mean_reward(task, records: list[dict], samples: int = 4, batch_size: int = 8) -> float:
    """Mean reward of `samples` sampled completions per prompt of the records."""
    if not records:
        return float("nan")
    total = 0.0
    for i in range(0, len(records), batch_size):
        task.rollout(records[i:i + batch_size], samples)
        total += float(task.last_rewards.sum())
    return total / (len(records) * samples)


def run_rl(cfg) -> dict:
    model, tokenizer, ctx, trainable, total = load_tuned(cfg, cfg.tune)
    records = read_prompts(cfg.data)
    random.Random(cfg.seed).shuffle(records)
    n_held = int(len(records) * cfg.held_out)
    held, train = records[:n_held], records[n_held:]
    reward = build_reward(cfg, tokenizer, ctx.device)
    if cfg.method == "ppo":
        trained = ActorCritic(model)
        task = PPOTask(trained, tokenizer, reward, PPOSettings(kl_coef=cfg.kl_coef, clip=cfg.clip,
                       ppo_epochs=cfg.ppo_epochs), cfg.max_new_tokens, cfg.temperature, cfg.seed)
    else:
        trained = model
        task = GRPOTask(model, tokenizer, reward, cfg.group_size, cfg.max_new_tokens, cfg.temperature,
                        cfg.kl_coef, cfg.seed)
    before = mean_reward(task, held)
    out = Path(cfg.out)
    wrapped, loader = data_parallel(trained, cfg, ctx, PromptLoader(train, cfg.batch.batch_size, cfg.seed))
    trainer = Trainer(wrapped, task, cfg, loader, ctx, out)
    started = time.perf_counter()
    state = fit_resumable(trainer, cfg, tokenizer)
    after = mean_reward(task, held)
    trainer.model = trainer.base_model = model  # export the policy, not the value head
    export_tuned(trainer, model, cfg.tune, out, tokenizer, cfg.checkpoint)
    summary = finish_run(out, state, started, ctx, world_size=ctx.world_size, method=cfg.method, tune=cfg.tune, prompts_trained=len(train),
                         prompts_held_out=len(held), mean_reward_before=before, mean_reward_after=after,
                         reward=cfg.reward_model or cfg.reward_fn, trainable_parameters=trainable, parameters=total)
    if ctx.is_main:
        print(f"[align] {cfg.method}: held-out mean reward {before:.3f} -> {after:.3f}; model -> {out / 'final'}",
              flush=True)
    return summary
