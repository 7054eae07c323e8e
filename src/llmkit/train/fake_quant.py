"""Quantization-aware training (fake quantization): each block Linear computes with its weight
rounded onto the integer grid it will be quantized to (llmkit.quant.int_grid), while the gradient passes
straight through the rounding to the full-precision weight (w + (Q(w) - w).detach()). Trained this
way the model learns weights that survive quantization; `llmkit compress quantize --method int8|int4`
afterwards reproduces the training-time numerics exactly. A module swap from outside the model,
keeping the parameter names, so checkpoints stay plain HF layout. `--qat int8|int4`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.quant.int_grid import dequantize, quant_params, quantize_with


class FakeQuantLinear(nn.Linear):
    def __init__(self, linear: nn.Linear, bits: int, group_size: int):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias  # the same Parameters: names and optimizer state unchanged
        self.bits, self.group_size = bits, group_size

    def quantized_weight(self) -> torch.Tensor:
        w = self.weight
        with torch.no_grad():
            scale, zero = quant_params(w, self.bits, self.group_size)
            snapped = dequantize(quantize_with(w, scale, zero, self.bits, self.group_size), scale, zero,
                                 self.group_size).to(w.dtype)
        return w + (snapped - w).detach()  # straight-through estimator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


def apply_fake_quant(model: nn.Module, bits: int, group_size: int = 128, skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Swap every block Linear for a FakeQuantLinear (int8: per channel; int4: groups); returns the count."""
    group = 0 if bits == 8 else group_size
    names = [n for n, m in model.named_modules() if type(m) is nn.Linear and n.rsplit(".", 1)[-1] not in skip]
    for name in names:
        model.set_submodule(name, FakeQuantLinear(model.get_submodule(name), bits, group))
    return len(names)
