"""Compressed checkpoints: what `generate`, `serve` and `chat` load after quantization or low-rank
factorisation. The model's module swaps are recorded in `compression.json` (per module: its kind
and shape parameters), so loading builds the model on the meta device, puts empty modules of the
recorded kinds in place, and assigns the stored tensors (`compressed.safetensors`, llmkit names).

    OUT/config.json, compression.json, compressed.safetensors, generation_config.json, tokenizer files
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from llmkit.checkpoint.hf_config import to_hf_config
from llmkit.checkpoint.io import load_config
from llmkit.compress.lowrank import LowRankLinear
from llmkit.compress.quant_linear import QuantLinear
from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir, write_json
from llmkit.model import build_model
from llmkit.quant.nf4 import NF4Linear

MANIFEST, WEIGHTS = "compression.json", "compressed.safetensors"


def module_spec(module: nn.Module) -> dict:
    """How to rebuild `module` empty: its kind and shape parameters."""
    if isinstance(module, QuantLinear):
        return {"kind": "quant", "in": module.in_features, "out": module.out_features, "bits": module.bits,
                "group_size": module.group_size, "bias": module.bias is not None,
                "input_scale": module.input_scale is not None, "dynamic": module.dynamic}
    if isinstance(module, NF4Linear):
        return {"kind": "nf4", "in": module.in_features, "out": module.out_features, "bias": module.bias is not None}
    if isinstance(module, LowRankLinear):
        return {"kind": "lowrank", "in": module.in_features, "out": module.out_features, "rank": module.rank,
                "bias": module.up.bias is not None}
    raise LlmkitError(f"{type(module).__name__} is not a compressed module")


def _empty(spec: dict) -> nn.Module:
    if spec["kind"] == "quant":
        return QuantLinear(spec["in"], spec["out"], spec["bits"], spec["group_size"], spec["bias"],
                           spec["input_scale"], device="meta", dynamic=spec.get("dynamic", False))
    if spec["kind"] == "nf4":
        return NF4Linear.empty(spec["in"], spec["out"], spec["bias"])
    if spec["kind"] == "lowrank":
        return LowRankLinear(spec["in"], spec["out"], spec["rank"], spec["bias"], device="meta")
    raise LlmkitError(f"unknown compressed module kind {spec['kind']!r} in {MANIFEST}")


def save_compressed(model: nn.Module, out_dir: str | Path, method: str, tokenizer=None, overwrite: bool = False) -> Path:
    modules = {name: module_spec(m) for name, m in model.named_modules()
               if isinstance(m, (QuantLinear, LowRankLinear, NF4Linear))}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    cfg = model.cfg
    with atomic_dir(out_dir, kind="model", overwrite=overwrite) as tmp:
        write_json(tmp / "config.json", to_hf_config(cfg, "float32"))
        write_json(tmp / MANIFEST, {"method": method, "modules": modules})
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        write_json(tmp / "generation_config.json", {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
                                                    "pad_token_id": cfg.pad_token_id})
        if tokenizer is not None:
            tokenizer.save(tmp)
    return Path(out_dir)


def is_compressed(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / MANIFEST).is_file()


def load_compressed(checkpoint_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    path = Path(checkpoint_dir)
    manifest = json.loads((path / MANIFEST).read_text())
    model = build_model(load_config(path))  # meta
    for name, spec in manifest["modules"].items():
        model.set_submodule(name, _empty(spec))
    state = load_file(str(path / WEIGHTS), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (model.cfg.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise LlmkitError(f"{path}: the stored tensors do not match {MANIFEST} ({(missing + unexpected)[:3]})")
    model.tie_weights()
    model.compression_method = manifest["method"]
    return model.eval()
