"""What one training loop optimises. A Task turns raw token windows into model inputs and targets
(`make_batch`) and returns (summed token loss, target-token count) from `loss`; pre-training,
fine-tuning, distillation and alignment differ only here (and in which parameters train).
Objectives live in `objectives.py`."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import torch

IGNORE_INDEX = -100  # targets equal to this carry no loss

Batch = dict[str, Any]  # named model inputs and targets (tensors; RL tasks add rollout records)
Raw = TypeVar("Raw", contravariant=True)  # what the task's loader yields: token windows, pairs, prompts


class Task(Protocol[Raw]):
    """The contract the Trainer holds a task to. `Raw` is the first item its loader yields (a (B, T)
    token tensor for pre-training objectives; preference pairs, prompt records for the others) and
    `targets` the second (None where the loader has none)."""

    def make_batch(self, inputs: Raw, targets: torch.Tensor | None, generator=None) -> Batch: ...

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]: ...

    def state_dict(self) -> dict:
        """JSON-able state kept in training checkpoints (an RL task's rollout count); {} for most."""

    def load_state_dict(self, state: dict) -> None: ...


class StatelessTask:
    """For tasks whose batches depend only on their inputs: nothing to checkpoint."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
