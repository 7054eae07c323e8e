"""Quantize a model's Linears in place (`quantize_model`); save and reload the result with
llmkit.compress.checkpoint (save_compressed / load_compressed).

    int8   weight-only, per output channel, round to nearest
    int4   weight-only, group-wise (default 128), round to nearest
    gptq   int4 group-wise, GPTQ's error-compensating rounding (needs calibration text)
    awq    int4 group-wise, activation-aware input scaling (needs calibration text)
    nf4    4-bit NormalFloat in blocks of 64 with double-quantised scales (QLoRA's storage format)
    dynamic-int8  int8 weights per channel and int8 activations per token, integer matmul
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from llmkit.compress.awq import awq_quantize, rtn
from llmkit.compress.calibration import (
    LinearInputStats,
    compress_block_by_block,
    linear_targets,
)
from llmkit.compress.gptq import gptq_quantize
from llmkit.compress.quant_linear import QuantLinear
from llmkit.errors import LlmkitError
from llmkit.nf4 import BLOCK as NF4_BLOCK
from llmkit.nf4 import NF4Linear

METHODS = ("int8", "int4", "gptq", "awq", "nf4", "dynamic-int8")
NEEDS_CALIBRATION = ("gptq", "awq")


@dataclass
class QuantConfig:
    method: str = "int8"
    group_size: int = 128  # int4 / gptq / awq; int8 is per channel
    modules: list[str] = field(default_factory=list)  # filled in: the quantized Linears

    @property
    def bits(self) -> int:
        return 8 if self.method in ("int8", "dynamic-int8") else 4

    @property
    def groups(self) -> int:
        return 0 if self.bits == 8 else self.group_size


def quantize_model(model: nn.Module, method: str, group_size: int = 128,
                   calibration: Iterable[torch.Tensor] | None = None) -> QuantConfig:
    """Swap every block Linear for a QuantLinear in place; returns the recorded config."""
    if method not in METHODS:
        raise LlmkitError(f"unknown quantization method {method!r}; choose one of {', '.join(METHODS)}")
    if method in NEEDS_CALIBRATION and calibration is None:
        raise LlmkitError(f"{method} needs calibration text: pass --calib FILE (or the data directory)")
    # int8 also takes the output head when it is not tied to the embeddings: at batch-1 decode the
    # head is read every token (a vocabulary-sized matrix), and int8 costs it no measurable quality
    skip = ("lm_head",) if method not in ("int8", "dynamic-int8") or model.cfg.tie_embeddings else ()
    cfg = QuantConfig(method, group_size, linear_targets(model, skip))

    def convert(name: str, stats: LinearInputStats | None) -> None:
        linear = model.get_submodule(name)
        w = linear.weight.detach()
        if method == "nf4":
            if w.numel() % NF4_BLOCK == 0:  # NF4 needs whole blocks of 64 weights; else stays full precision
                model.set_submodule(name, NF4Linear(linear))
            return
        input_scale = None
        if method == "gptq":
            codes, scale, zero = gptq_quantize(w, stats.hessian, cfg.bits, cfg.groups)
        elif method == "awq":
            codes, scale, zero, input_scale = awq_quantize(w, stats.mean_abs, stats.sample, cfg.bits, cfg.groups)
        else:
            codes, scale, zero = rtn(w, cfg.bits, cfg.groups)
        model.set_submodule(name, QuantLinear.from_codes(codes.to(w.device), scale.to(w.device, w.dtype),
                                                         None if zero is None else zero.to(w.device), cfg.bits,
                                                         cfg.groups, linear.bias, None if input_scale is None else
                                                         input_scale.to(w.device, w.dtype),
                                                         dynamic=method == "dynamic-int8"))

    if method in NEEDS_CALIBRATION:
        compress_block_by_block(model, calibration, cfg.modules, convert)
    else:
        for name in cfg.modules:
            convert(name, None)
    model.quant_config = cfg
    return cfg
