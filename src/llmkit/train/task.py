"""Tasks: what one training loop optimises. A task turns a batch into a scalar loss; pre-training,
fine-tuning, distillation and alignment differ only here (and in which parameters train)."""

from __future__ import annotations

from typing import Protocol

import torch
from torch.nn import functional as F

IGNORE_INDEX = -100


class Task(Protocol):
    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor: ...


class CausalLMTask:
    """Next-token cross-entropy; targets equal to IGNORE_INDEX carry no loss."""

    def loss(self, model, batch) -> torch.Tensor:
        inputs, targets = batch  # (B, T), (B, T)
        logits = model(inputs)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)
