"""GRPO with verifiable rewards (Shao et al., arXiv 2402.03300) as a Task of the one training loop.

Each step the task samples `group_size` completions per prompt from the current policy through a
generation function handed in by the caller (llmkit.infer.generate_ids: the inference layer sits
above this one, so it is injected, not imported), scores them with a Python reward function, and turns rewards into
group-relative advantages A = (r - mean of the group) / (std of the group + eps): no value model.
The loss is the policy-gradient term -A * log pi(completion) per token (one update per batch, so
PPO's ratio is 1 and its clip inactive) plus beta times the k3 estimate of KL(pi || reference),
exp(ref - logp) - (ref - logp) - 1, against the frozen starting policy. It returns (sum over
sequences of their mean token loss, number of sequences), so the loop averages over sequences.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from llmkit.finetune.datasets import ShuffledBatches
from llmkit.finetune.preference_losses import token_logprobs
from llmkit.train.task import IGNORE_INDEX

RewardFn = Callable[[str, dict], float]  # (completion text, prompt record) -> reward
# (model, prompt ids, max_new_tokens, temperature, seed, stop ids, pad id) -> completion ids per prompt
GenerateFn = Callable[..., list[list[int]]]


class GRPOTask:
    name = "grpo"

    def __init__(self, policy, tokenizer, reward_fn: RewardFn, generate: GenerateFn, group_size: int = 4,
                 max_new_tokens: int = 16, temperature: float = 1.0, beta: float = 0.04, seed: int = 0):
        self.policy, self.tokenizer, self.reward_fn, self.generate = policy, tokenizer, reward_fn, generate
        self.group_size, self.max_new_tokens, self.temperature, self.beta = group_size, max_new_tokens, temperature, beta
        self.reference = copy.deepcopy(policy).eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.seed, self.rollouts = seed, 0
        self.last_rewards: torch.Tensor | None = None
        self.stop_ids = {i for i in (tokenizer.eos_id, tokenizer.token_id("<|im_end|>")) if i is not None}

    def prompt_ids(self, record: dict) -> list[int]:
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": record["prompt"]}], add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def make_batch(self, records: list[dict], _targets=None, generator=None) -> dict:
        """Roll out the group for each prompt and score it (no gradients)."""
        prompts = [self.prompt_ids(r) for r in records for _ in range(self.group_size)]
        self.rollouts += 1
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        was_training = self.policy.training
        self.policy.eval()
        completions = self.generate(self.policy, prompts, self.max_new_tokens, self.temperature,
                                    self.seed * 1_000_003 + self.rollouts, self.stop_ids, pad)
        self.policy.train(was_training)
        rewards = torch.tensor([self.reward_fn(self.tokenizer.decode(c), records[i // self.group_size])
                                for i, c in enumerate(completions)], dtype=torch.float32)
        grouped = rewards.view(len(records), self.group_size)
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).flatten()
        self.last_rewards = rewards
        tokens, targets = _sequences(prompts, completions, pad)
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
        per_sequence = (per_token * keep).sum(1) / keep.sum(1).clamp(min=1)
        return per_sequence.sum(), len(per_sequence)


def _sequences(prompts: list[list[int]], completions: list[list[int]], pad: int):
    """Right-padded prompt + completion inputs (N, T) and targets that keep only completion tokens."""
    full = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(len(f) for f in full) - 1
    tokens = torch.full((len(full), width), pad, dtype=torch.long)
    targets = torch.full((len(full), width), IGNORE_INDEX, dtype=torch.long)
    for row, (p, seq) in enumerate(zip(prompts, full, strict=True)):
        tokens[row, : len(seq) - 1] = torch.tensor(seq[:-1])
        for position in range(len(p) - 1, len(seq) - 1):  # position t predicts seq[t + 1]
            targets[row, position] = seq[position + 1]
    return tokens, targets


class PromptLoader(ShuffledBatches):
    """Endless batches of prompt records (dicts), shuffled per epoch: (records, None)."""

    def __init__(self, records: list[dict], batch_size: int, seed: int = 0):
        super().__init__(records, batch_size, lambda picked: (picked, None), seed, "prompts")
