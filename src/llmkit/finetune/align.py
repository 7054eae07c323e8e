"""`llmkit align`: preference optimisation (DPO, IPO, SimPO, ORPO) on the one training loop; the RL
methods (PPO, GRPO) are in llmkit.finetune.rl_run.

A held-out share of the pairs measures preference accuracy before and after: the fraction of
pairs whose implicit reward margin (the method's own: beta-scaled log-ratio difference for
DPO/IPO, length-normalised log-probability difference for SimPO, log odds ratio for ORPO) is
positive, i.e. the model prefers the chosen answer.

    OUT/final/ (merged HF checkpoint), OUT/adapter/ (LoRA), metrics.jsonl, loss_curve.png, summary.json
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from llmkit.errors import LlmkitError
from llmkit.finetune.peft.ia3 import IA3Config
from llmkit.finetune.peft.lora import LoraConfig
from llmkit.finetune.preference_data import PreferenceLoader, pair_batch, split_pairs
from llmkit.finetune.preference_task import PreferenceTask
from llmkit.finetune.run import (
    data_parallel,
    export_tuned,
    finish_run,
    fit_resumable,
    load_tuned,
)
from llmkit.train.config import OptimConfig, RunConfig
from llmkit.train.trainer import Trainer


@dataclass
class AlignConfig(RunConfig):
    checkpoint: str = ""
    data: str = ""  # preference pairs (dpo, ipo, simpo, orpo) or prompts (ppo, grpo), JSONL
    out: str = "runs/align"
    method: Literal["dpo", "ipo", "simpo", "orpo", "ppo", "grpo"] = "dpo"
    tune: Literal["full", "lora", "qlora", "dora", "ia3"] = "lora"
    lora: LoraConfig = field(default_factory=LoraConfig)
    ia3: IA3Config = field(default_factory=IA3Config)
    beta: float = 0.1  # DPO/IPO/SimPO temperature
    gamma: float = 0.5  # SimPO target margin
    lam: float = 0.1  # ORPO weight of the odds-ratio term
    label_smoothing: float = 0.0  # conservative DPO
    # ppo / grpo: prompts JSONL; reward from a reward model dir, else the named reward function
    reward_model: str = ""
    reward_fn: str = "exact_match"  # exact_match, contains_answer, answer_prefix, safe_response, module:function
    max_new_tokens: int = 32  # rollout length
    temperature: float = 1.0  # rollout sampling temperature
    group_size: int = 4  # grpo: completions per prompt
    kl_coef: float = 0.05  # ppo: per-token KL penalty; grpo: weight of the k3 KL term
    clip: float = 0.2  # ppo: ratio clip
    ppo_epochs: int = 2  # ppo: optimiser steps per rollout
    held_out: float = 0.1  # share of pairs kept out of training to measure preference accuracy
    max_steps: int = 100
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5))


@torch.no_grad()
def preference_accuracy(task: PreferenceTask, model, pairs, pad_id: int, batch_size: int = 16) -> dict[str, float]:
    """{"margin": share of pairs with a positive implicit reward margin (the method's own; exactly 0 for
    DPO/IPO before training, when policy = reference), "likelihood": share where the model gives the
    chosen answer the higher log-probability (comparable before and after)}."""
    if not pairs:
        return {"margin": float("nan"), "likelihood": float("nan")}
    was_training = model.training
    model.eval()
    margin_wins = likelihood_wins = 0
    for i in range(0, len(pairs), batch_size):
        batch = task.make_batch(pair_batch(pairs[i:i + batch_size], pad_id))
        task.loss(model, batch)
        margin_wins += int((task.last_margins > 0).sum())
        scores = task.sequence_scores(model, batch)
        likelihood_wins += int((scores["chosen"] > scores["rejected"]).sum())
    model.train(was_training)
    return {"margin": margin_wins / len(pairs), "likelihood": likelihood_wins / len(pairs)}


def run_align(cfg: AlignConfig) -> dict:
    if cfg.method in ("ppo", "grpo"):
        from llmkit.finetune.rl_run import run_rl

        if not cfg.checkpoint or not cfg.data:
            raise LlmkitError("--checkpoint DIR and --data prompts.jsonl are required")
        return run_rl(cfg)
    if not cfg.checkpoint or not cfg.data:
        raise LlmkitError("--checkpoint DIR and --data prefs.jsonl are required")
    model, tokenizer, ctx, trainable, total = load_tuned(cfg, cfg.tune)
    held, train = split_pairs(tokenizer, cfg.data, cfg.batch.seq_len, cfg.held_out, cfg.seed)
    pad = tokenizer.padding_id
    task = PreferenceTask(cfg.method, model, cfg.beta, cfg.gamma, cfg.lam, cfg.label_smoothing)
    before = preference_accuracy(task, model, held, pad)
    out = Path(cfg.out)
    trained, loader = data_parallel(model, cfg, ctx, PreferenceLoader(train, cfg.batch.batch_size, pad, cfg.seed))
    trainer = Trainer(trained, task, cfg, loader, ctx, out)
    started = time.perf_counter()
    state = fit_resumable(trainer, cfg, tokenizer)
    after = preference_accuracy(task, model, held, pad)
    export_tuned(trainer, model, cfg.tune, out, tokenizer, cfg.checkpoint)
    summary = finish_run(out, state, started, ctx, method=cfg.method, tune=cfg.tune, pairs_trained=len(train),
                         pairs_held_out=len(held), preference_accuracy_before=before["margin"],
                         preference_accuracy_after=after["margin"], likelihood_preference_before=before["likelihood"],
                         likelihood_preference_after=after["likelihood"],
                         trainable_parameters=trainable, parameters=total, world_size=ctx.world_size)
    if ctx.is_main:
        print(f"[align] {cfg.method}: held-out preference accuracy (reward margin > 0) {before['margin']:.0%} -> "
              f"{after['margin']:.0%}; chosen more likely than rejected {before['likelihood']:.0%} -> "
              f"{after['likelihood']:.0%}; model -> {out / 'final'}", flush=True)
    return summary
