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
from llmkit.quant.nf4 import BLOCK as NF4_BLOCK
from llmkit.quant.nf4 import NF4Linear

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


GROUP_SIZES = (128, 64, 32)  # the usual int4 groups, largest first


def choose_group_size(model: nn.Module, modules: list[str], requested: int | None) -> int:
    """`requested` if it divides every quantized Linear's inputs (an error naming the layer if not);
    without one, the largest of 128, 64, 32 that divides them all (real shapes such as SmolLM2's 576
    inputs do not split into 128s)."""
    widths = {name: model.get_submodule(name).in_features for name in modules}
    if requested is not None:
        bad = next((n for n, w in widths.items() if w % requested), None)
        if bad is not None:
            fits = [g for g in GROUP_SIZES if all(w % g == 0 for w in widths.values())]
            hint = f"use --group-size {fits[0]}" if fits else "no common group size fits; use int8"
            raise LlmkitError(f"{bad} has {widths[bad]} inputs, not a multiple of --group-size {requested}; {hint}")
        return requested
    for size in GROUP_SIZES:
        if all(w % size == 0 for w in widths.values()):
            return size
    raise LlmkitError(f"no group size of {GROUP_SIZES} divides every layer's inputs ({sorted(set(widths.values()))}); "
                      "pass --group-size N that does, or use int8")


def quantize_model(model: nn.Module, method: str, group_size: int | None = None,
                   calibration: Iterable[torch.Tensor] | None = None) -> QuantConfig:
    """Swap every block Linear for a QuantLinear in place; returns the recorded config. Without a
    group size, int4 methods take the largest common one (choose_group_size)."""
    if method not in METHODS:
        raise LlmkitError(f"unknown quantization method {method!r}; choose one of {', '.join(METHODS)}")
    if method in NEEDS_CALIBRATION and calibration is None:
        raise LlmkitError(f"{method} needs calibration text: pass --calib FILE (or the data directory)")
    # int8 also takes the output head when it is not tied to the embeddings: at batch-1 decode the
    # head is read every token (a vocabulary-sized matrix), and int8 costs it no measurable quality
    skip = ("lm_head",) if method not in ("int8", "dynamic-int8") or model.cfg.tie_embeddings else ()
    targets = linear_targets(model, skip)
    grouped = method in ("int4", "gptq", "awq")
    cfg = QuantConfig(method, choose_group_size(model, targets, group_size) if grouped else group_size or 128, targets)

    def convert(name: str, stats: LinearInputStats | None) -> None:
        linear = model.get_submodule(name)
        w = linear.weight.detach()
        if method == "nf4":
            if w.numel() % NF4_BLOCK == 0:  # NF4 needs whole blocks of 64 weights; else stays full precision
                model.set_submodule(name, NF4Linear(linear))
            return
        input_scale = None
        if method == "gptq":
            codes, scale, zero = gptq_quantize(w, stats.hessian, cfg.bits, cfg.groups, act_order=True)
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
