"""Mixed precision: bf16 autocast, or fp16 autocast with dynamic loss scaling (inf/NaN gradients
skip the step and halve the scale; after `growth_interval` good steps the scale doubles)."""

from __future__ import annotations

import contextlib

import torch


class Precision:
    def __init__(self, kind: str, device: torch.device):
        self.kind, self.device = kind, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(kind)
        self.scaler = torch.amp.GradScaler(device.type, enabled=kind == "fp16")

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def unscale(self, optimizer) -> None:
        self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> bool:
        """Optimizer step; False when fp16 found inf/NaN gradients and skipped it."""
        scale_before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(optimizer)
        self.scaler.update()
        return scale_before is None or self.scaler.get_scale() >= scale_before

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
