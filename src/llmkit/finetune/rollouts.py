"""What the RL tasks (PPO, GRPO) share: a frozen reference copy of the starting policy, chat-formatted
prompts, rollouts through the decoding Engine (llmkit.decode), reward scoring, and the padded
prompt + completion batch whose targets keep only completion tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from llmkit.decode import SamplingParams, generate_ids
from llmkit.decode.chat import chat_prompt_ids, user_turn
from llmkit.finetune.datasets import ShuffledBatches
from llmkit.train.task import IGNORE_INDEX

RewardFn = Callable[[str, dict], float]  # (completion text, prompt record) -> reward


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


class RolloutTask:
    """Base of the on-policy tasks: `rollout(records, per_prompt)` samples and scores completions."""

    def __init__(self, policy, tokenizer, reward_fn: RewardFn, max_new_tokens: int, temperature: float, seed: int):
        self.policy, self.tokenizer, self.reward_fn = policy, tokenizer, reward_fn
        self.max_new_tokens, self.temperature, self.seed, self.rollouts = max_new_tokens, temperature, seed, 0
        self.reference = frozen_copy(policy)
        end = tokenizer.token_id("<|im_end|>")
        self.end_id = end if end is not None else tokenizer.eos_id  # what a finished completion ends with
        self.stop_ids = {i for i in (tokenizer.eos_id, end) if i is not None}
        self.pad = tokenizer.padding_id
        self.last_rewards: torch.Tensor | None = None

    def state_dict(self) -> dict:
        """The rollout count seeds the sampling, so a resumed run samples what the straight one did."""
        return {"rollouts": self.rollouts}

    def load_state_dict(self, state: dict) -> None:
        self.rollouts = state.get("rollouts", self.rollouts)

    def prompt_ids(self, record: dict) -> list[int]:
        return chat_prompt_ids(self.tokenizer, user_turn(record["prompt"]))

    @torch.no_grad()
    def rollout(self, records: list[dict], per_prompt: int) -> tuple[list[list[int]], list[list[int]], torch.Tensor]:
        """(prompt ids, completion ids, rewards (N,)) for `per_prompt` samples of each record. A
        completion that stopped before the budget keeps its end token, so stopping is learned too."""
        unique = [self.prompt_ids(r) for r in records]
        prompts = [p for p in unique for _ in range(per_prompt)]
        self.rollouts += 1
        was_training = self.policy.training
        params = SamplingParams(temperature=self.temperature, seed=self.seed * 1_000_003 + self.rollouts, n=per_prompt)
        completions = generate_ids(self.policy, unique, self.max_new_tokens, params, self.stop_ids)  # n per prompt
        self.policy.train(was_training)
        rewards = torch.tensor([self.reward_fn(self.tokenizer.decode(c), records[i // per_prompt])
                                for i, c in enumerate(completions)], dtype=torch.float32)
        if self.end_id is not None:
            completions = [c + [self.end_id] if len(c) < self.max_new_tokens else c for c in completions]
        self.last_rewards = rewards
        return prompts, completions, rewards


def rollout_sequences(prompts: list[list[int]], completions: list[list[int]], pad: int):
    """Right-padded prompt + completion inputs (N, T) and targets that keep only completion tokens."""
    full = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(max(len(f) for f in full) - 1, 1)
    tokens = torch.full((len(full), width), pad, dtype=torch.long)
    targets = torch.full((len(full), width), IGNORE_INDEX, dtype=torch.long)
    for row, (p, seq) in enumerate(zip(prompts, full, strict=True)):
        tokens[row, : len(seq) - 1] = torch.tensor(seq[:-1])
        for position in range(len(p) - 1, len(seq) - 1):  # position t predicts seq[t + 1]
            targets[row, position] = seq[position + 1]
    return tokens, targets


def masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per-row mean (N,) of values (N, T) over positions where keep (N, T) is 1."""
    return (values * keep).sum(1) / keep.sum(1).clamp(min=1)


class PromptLoader(ShuffledBatches):
    """Endless batches of prompt records (dicts), shuffled per epoch: (records, None)."""

    def __init__(self, records: list[dict], batch_size: int, seed: int = 0):
        super().__init__(records, batch_size, lambda picked: (picked, None), seed, "prompts")
