"""fp32 Linears that decode through the streaming weight kernel: at one to a few rows (batch-1 or
small-batch decode) torch's BLAS GEMM spends more on packing and blocking than on reading the
weights; the kernel reads each weight once (measured on a 2-core AVX-512 EPYC: 2-3x faster at 1-4
rows, slower from 16 rows, where the GEMM takes over).

    use_fp32_decode_kernel(model)   # in place, after fusion; what LLM.load(fast_cpu=True) does for fp32

The module keeps the Linear's own weight Parameter (a tied output head still shares the embedding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmkit.compress.quant_linear import kernel_rows, on_rows, weight_only_kernel


class FP32DecodeLinear(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.is_contiguous() and kernel_rows(x, self.in_features, 32):
            return on_rows(x, self.in_features, self.out_features, self.bias,
                           lambda rows: weight_only_kernel().fp32_linear(rows, self.weight))
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, fp32, decode kernel up to a few rows"


def use_fp32_decode_kernel(model: nn.Module) -> int:
    """In place: every fp32 CPU nn.Linear decodes through the kernel; returns how many were swapped
    (none when the kernel cannot be built here)."""
    if weight_only_kernel() is None:
        return 0
    swaps = {name: FP32DecodeLinear(m) for name, m in model.named_modules()
             if type(m) is nn.Linear and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu"}
    for name, module in swaps.items():
        model.set_submodule(name, module)
    return len(swaps)
