"""What one training loop optimises. A Task turns raw token windows into model inputs and targets
(`make_batch`) and returns (summed token loss, target-token count) from `loss`; pre-training,
fine-tuning, distillation and alignment differ only here (and in which parameters train).
Objectives live in `objectives.py`."""

from __future__ import annotations

from typing import Protocol

import torch

IGNORE_INDEX = -100  # targets equal to this carry no loss


class Task(Protocol):
    def make_batch(self, inputs: torch.Tensor, targets: torch.Tensor, generator=None) -> dict: ...

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, int]: ...
