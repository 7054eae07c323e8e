"""RLHF with PPO (Schulman et al., arXiv 1707.06347; as applied to language models by Ouyang et al.,
arXiv 2203.02155) as a Task of the one training loop.

The trained module is an `ActorCritic`: the policy plus a scalar value head on its final hidden
states. Each rollout samples one completion per prompt through the injected generation function
and scores it (a reward model or a Python function). Per-token rewards are the KL penalty
-kl_coef * (log pi_old - log pi_ref) against the frozen starting policy, with the score added on the
completion's last token; advantages come from GAE(gamma, lambda) over the completion tokens and are
whitened over the batch. A rollout is reused for `ppo_epochs` optimiser steps, which is what makes
the clipped ratio objective matter: min(r A, clip(r, 1 - eps, 1 + eps) A) with r = pi / pi_old,
plus vf_coef times the clipped value loss against the GAE returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from llmkit.finetune.preference_losses import token_logprobs
from llmkit.finetune.rollouts import (
    RewardFn,
    RolloutTask,
    masked_mean,
    rollout_sequences,
)
from llmkit.train.task import IGNORE_INDEX


class ActorCritic(nn.Module):
    """Policy + value head. forward(tokens) gives logits (B, T, V); with_values=True also values (B, T)."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy, self.cfg = policy, policy.cfg
        weight = next(policy.parameters())
        self.value_head = nn.Linear(policy.cfg.d_model, 1, device=weight.device, dtype=weight.dtype)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, tokens: torch.Tensor, with_values: bool = False):
        hidden = self.policy.hidden_states(tokens)  # (B, T, C)
        logits = self.policy.lm_head(hidden)  # (B, T, V)
        return (logits, self.value_head(hidden).squeeze(-1).float()) if with_values else logits


def gae(rewards: torch.Tensor, values: torch.Tensor, keep: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates (N, T) over the kept (completion) positions; the state after
    the last completion token is terminal (value 0). rewards, values, keep: (N, T)."""
    values = values * keep
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * keep[:, t]
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages


@dataclass
class PPOSettings:
    kl_coef: float = 0.05  # weight of the per-token KL penalty to the frozen reference
    clip: float = 0.2  # policy ratio clip
    value_clip: float = 0.2  # value update clip
    vf_coef: float = 0.5  # weight of the value loss
    gamma: float = 1.0
    lam: float = 0.95
    ppo_epochs: int = 2  # optimiser steps per rollout


class PPOTask(RolloutTask):
    name = "ppo"

    def __init__(self, actor_critic: ActorCritic, tokenizer, reward_fn: RewardFn,
                 settings: PPOSettings | None = None, max_new_tokens: int = 16, temperature: float = 1.0, seed: int = 0):
        super().__init__(actor_critic.policy, tokenizer, reward_fn, max_new_tokens, temperature, seed)
        self.actor_critic, self.settings = actor_critic, settings or PPOSettings()
        self._rollout_batch, self._uses = None, 0
        self.last_stats: dict[str, float] = {}

    def load_state_dict(self, state: dict) -> None:
        """Resuming drops the cached rollout: exact when --save-every is a multiple of ppo_epochs."""
        super().load_state_dict(state)
        self._rollout_batch = None

    def make_batch(self, records: list[dict], _targets=None, generator=None) -> dict:
        """A fresh rollout every `ppo_epochs` calls; the same batch (old log-probs, advantages) in between."""
        if self._rollout_batch is None or self._uses >= self.settings.ppo_epochs:
            self._rollout_batch, self._uses = self._score_rollout(records), 0
        self._uses += 1
        return self._rollout_batch

    @torch.no_grad()
    def _score_rollout(self, records: list[dict]) -> dict:
        s = self.settings
        prompts, completions, scores = self.rollout(records, 1)
        device = next(self.actor_critic.parameters()).device
        tokens, targets = (t.to(device) for t in rollout_sequences(prompts, completions, self.pad))
        keep = (targets != IGNORE_INDEX).float()  # (N, T)
        was_training = self.actor_critic.training
        self.actor_critic.eval()
        logits, values = self.actor_critic(tokens, with_values=True)
        self.actor_critic.train(was_training)
        old_logp = token_logprobs(logits, targets)  # (N, T)
        ref_logp = token_logprobs(self.reference(tokens), targets)
        rewards = -s.kl_coef * (old_logp - ref_logp) * keep
        last = (keep * torch.arange(keep.shape[1], device=device)).argmax(1)  # (N,) last completion position
        rewards[torch.arange(len(tokens), device=device), last] += scores.to(device)
        advantages = gae(rewards, values, keep, s.gamma, s.lam)
        returns = advantages + values * keep
        kept = advantages[keep.bool()]
        advantages = (advantages - kept.mean()) / (kept.std() + 1e-8) * keep  # whitened over the batch
        return {"tokens": tokens, "completion_targets": targets, "old_logp": old_logp, "old_values": values * keep,
                "advantages": advantages, "returns": returns, "targets": torch.zeros(len(tokens), dtype=torch.long)}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        s, targets = self.settings, batch["completion_targets"]
        keep = (targets != IGNORE_INDEX).float()  # (N, T)
        logits, values = model(batch["tokens"], with_values=True)
        logp = token_logprobs(logits, targets)  # (N, T)
        ratio = torch.exp(logp - batch["old_logp"])
        advantages = batch["advantages"]
        policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - s.clip, 1 + s.clip))
        old_values, returns = batch["old_values"], batch["returns"]
        clipped_values = old_values + (values - old_values).clamp(-s.value_clip, s.value_clip)
        value_loss = 0.5 * torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
        per_sequence = masked_mean(policy_loss + s.vf_coef * value_loss, keep)
        with torch.no_grad():
            self.last_stats = {"clip_fraction": float(masked_mean(((ratio - 1).abs() > s.clip).float(), keep).mean()),
                               "approx_kl": float(masked_mean(batch["old_logp"] - logp, keep).mean())}
        return per_sequence.sum(), len(per_sequence)
