"""Quantize a model's Linears (`quantize_model`), save it (`save_quantized`) and rebuild it for
inference (`load_quantized`: the model built on the meta device, its Linears swapped for empty
QuantLinears of the recorded format, the stored tensors assigned).

    int8   weight-only, per output channel, round to nearest
    int4   weight-only, group-wise (default 128), round to nearest
    gptq   int4 group-wise, GPTQ's error-compensating rounding (needs calibration text)
    awq    int4 group-wise, activation-aware input scaling (needs calibration text)

A quantized checkpoint directory: config.json (HF), quantization.json (method, bits, group size,
which modules), quantized.safetensors (llmkit tensor names), generation_config.json, tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from llmkit.checkpoint.hf_config import to_hf_config
from llmkit.checkpoint.io import load_config
from llmkit.compress.awq import awq_quantize, rtn
from llmkit.compress.calibration import collect_input_stats, linear_targets
from llmkit.compress.gptq import gptq_quantize
from llmkit.compress.quant_linear import QuantLinear
from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir, write_json
from llmkit.model import build_model

QUANT_FILE, WEIGHTS_FILE = "quantization.json", "quantized.safetensors"
METHODS = ("int8", "int4", "gptq", "awq")
NEEDS_CALIBRATION = ("gptq", "awq")


@dataclass
class QuantConfig:
    method: str = "int8"
    group_size: int = 128  # int4 / gptq / awq; int8 is per channel
    modules: list[str] = field(default_factory=list)  # filled in: the quantized Linears

    @property
    def bits(self) -> int:
        return 8 if self.method == "int8" else 4

    @property
    def groups(self) -> int:
        return 0 if self.method == "int8" else self.group_size


def quantize_model(model: nn.Module, method: str, group_size: int = 128,
                   calibration: Iterable[torch.Tensor] | None = None) -> QuantConfig:
    """Swap every block Linear for a QuantLinear in place; returns the recorded config."""
    if method not in METHODS:
        raise LlmkitError(f"unknown quantization method {method!r}; choose one of {', '.join(METHODS)}")
    if method in NEEDS_CALIBRATION and calibration is None:
        raise LlmkitError(f"{method} needs calibration text: pass --calib FILE (or the data directory)")
    # int8 also takes the output head when it is not tied to the embeddings: at batch-1 decode the
    # head is read every token (a vocabulary-sized matrix), and int8 costs it no measurable quality
    skip = ("lm_head",) if method != "int8" or model.cfg.tie_embeddings else ()
    cfg = QuantConfig(method, group_size, linear_targets(model, skip))
    stats = collect_input_stats(model, calibration, cfg.modules) if method in NEEDS_CALIBRATION else {}
    for name in cfg.modules:
        linear = model.get_submodule(name)
        w = linear.weight.detach()
        input_scale = None
        if method == "gptq":
            codes, scale, zero = gptq_quantize(w, stats[name].hessian, cfg.bits, cfg.groups)
        elif method == "awq":
            codes, scale, zero, input_scale = awq_quantize(w, stats[name].mean_abs, stats[name].sample, cfg.bits, cfg.groups)
        else:
            codes, scale, zero = rtn(w, cfg.bits, cfg.groups)
        model.set_submodule(name, QuantLinear.from_codes(codes.to(w.device), scale.to(w.device, w.dtype),
                                                         None if zero is None else zero.to(w.device), cfg.bits,
                                                         cfg.groups, linear.bias, None if input_scale is None else
                                                         input_scale.to(w.device, w.dtype)))
    model.quant_config = cfg
    return cfg


def save_quantized(model: nn.Module, out_dir: str | Path, tokenizer=None) -> Path:
    cfg: QuantConfig = model.quant_config
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "config.json", to_hf_config(model.cfg, "float32"))
        write_json(tmp / QUANT_FILE, asdict(cfg))
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        write_json(tmp / "generation_config.json", {"bos_token_id": model.cfg.bos_token_id,
                                                    "eos_token_id": model.cfg.eos_token_id,
                                                    "pad_token_id": model.cfg.pad_token_id})
        if tokenizer is not None:
            tokenizer.save(tmp)
    return Path(out_dir)


def is_quantized(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / QUANT_FILE).is_file()


def load_quantized(checkpoint_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    path = Path(checkpoint_dir)
    cfg = QuantConfig(**json.loads((path / QUANT_FILE).read_text()))
    model = build_model(load_config(path))  # meta
    bias = lambda name: model.get_submodule(name).bias is not None
    for name in cfg.modules:
        linear = model.get_submodule(name)
        model.set_submodule(name, QuantLinear(linear.in_features, linear.out_features, cfg.bits, cfg.groups,
                                              bias(name), cfg.method == "awq", device="meta"))
    state = load_file(str(path / WEIGHTS_FILE), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (model.cfg.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise LlmkitError(f"{path}: quantized weights do not match quantization.json ({(missing + unexpected)[:3]})")
    model.tie_weights()
    model.quant_config = cfg
    return model.eval()
