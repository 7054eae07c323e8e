"""GRPO with verifiable rewards (Shao et al., arXiv 2402.03300) as a Task of the one training loop.

Each step the task samples `group_size` completions per prompt from the current policy (see
llmkit.finetune.rollouts), scores them with a reward function, and turns rewards into
group-relative advantages A = (r - mean of the group) / (std of the group + eps): no value model.
The loss is the policy-gradient term -A * log pi(completion) per token (one update per batch, so
PPO's ratio is 1 and its clip inactive) plus beta times the k3 estimate of KL(pi || reference),
exp(ref - logp) - (ref - logp) - 1, against the frozen starting policy. It returns (sum over
sequences of their mean token loss, number of sequences), so the loop averages over sequences.
"""

from __future__ import annotations

import torch

from llmkit.finetune.preference_losses import token_logprobs
from llmkit.finetune.rollouts import (
    PromptLoader,
    RewardFn,
    RolloutTask,
    masked_mean,
    rollout_sequences,
)
from llmkit.train.task import IGNORE_INDEX

__all__ = ["GRPOTask", "PromptLoader"]


class GRPOTask(RolloutTask):
    name = "grpo"

    def __init__(self, policy, tokenizer, reward_fn: RewardFn, group_size: int = 4,
                 max_new_tokens: int = 16, temperature: float = 1.0, beta: float = 0.04, seed: int = 0):
        super().__init__(policy, tokenizer, reward_fn, max_new_tokens, temperature, seed)
        self.group_size, self.beta = group_size, beta

    def make_batch(self, records: list[dict], _targets=None, generator=None) -> dict:
        """Roll out the group for each prompt and score it (no gradients)."""
        prompts, completions, rewards = self.rollout(records, self.group_size)
        grouped = rewards.view(len(records), self.group_size)
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).flatten()
        tokens, targets = rollout_sequences(prompts, completions, self.pad)
        return {"tokens": tokens, "completion_targets": targets, "advantages": advantages,
                "targets": torch.zeros(len(prompts), dtype=torch.long)}  # one loss unit per sequence

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        targets = batch["completion_targets"]
        keep = (targets != IGNORE_INDEX).float()  # (N, T)
        logp = token_logprobs(model(batch["tokens"]), targets)  # (N, T)
        with torch.no_grad():
            ref = token_logprobs(self.reference(batch["tokens"]), targets)
        kl = torch.exp(ref - logp) - (ref - logp) - 1  # k3 estimator, >= 0
        per_token = -batch["advantages"][:, None] * logp + self.beta * kl
        per_sequence = masked_mean(per_token, keep)
        return per_sequence.sum(), len(per_sequence)
