"""(IA)^3 (Liu et al., arXiv 2205.05638): learned vectors that rescale activations, a transform from
outside the model. On attention projections the output is scaled, y = l * (W x + b); on
feed-forward modules the input is, y = W (l * x) + b. Vectors start at one (the model starts
unchanged). Saved in PEFT's IA3 layout (`ia3_l` tensors of shape (out, 1) or (1, in))."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from llmkit.checkpoint.hf_config import hf_family
from llmkit.checkpoint.keymaps import hf_module_name, llmkit_module_name
from llmkit.errors import LlmkitError
from llmkit.finetune.peft import register
from llmkit.finetune.peft.base import (
    ADAPTER_WEIGHTS,
    PEFT_PREFIX,
    AdapterMethod,
    read_adapter_config,
    write_peft_adapter,
)
from llmkit.finetune.peft.targets import freeze_and_select, modules_of, replace_modules, wrap_modules


@dataclass
class IA3Config:
    target_modules: list[str] = field(default_factory=lambda: ["k_proj", "v_proj", "down_proj"])
    feedforward_modules: list[str] = field(default_factory=lambda: ["down_proj"])


class IA3Linear(nn.Module):
    def __init__(self, base: nn.Linear, feedforward: bool):
        super().__init__()
        self.base, self.feedforward = base, feedforward
        size = base.in_features if feedforward else base.out_features
        self.scale = nn.Parameter(torch.ones(size, device=base.weight.device, dtype=base.weight.dtype))
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feedforward:
            return self.base(x * self.scale)
        return self.base(x) * self.scale

    @torch.no_grad()
    def merged_linear(self) -> nn.Linear:
        """A plain Linear with the scaling folded into its weight (and bias)."""
        if self.feedforward:
            self.base.weight.mul_(self.scale[None, :])
        else:
            self.base.weight.mul_(self.scale[:, None])
            if self.base.bias is not None:
                self.base.bias.mul_(self.scale)
        return self.base


def apply_ia3(model: nn.Module, cfg: IA3Config) -> list[str]:
    names = wrap_modules(model, freeze_and_select(model, cfg.target_modules),
                         lambda name, base: IA3Linear(base, name.rsplit(".", 1)[-1] in cfg.feedforward_modules))
    model.ia3_config = cfg
    return names


def ia3_modules(model: nn.Module) -> dict[str, IA3Linear]:
    return modules_of(model, IA3Linear)


def merge_ia3(model: nn.Module) -> nn.Module:
    return replace_modules(model, IA3Linear, IA3Linear.merged_linear)


def save_ia3_adapter(model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
    cfg, family = model.ia3_config, hf_family(model.cfg)
    tensors = {}
    for name, module in ia3_modules(model).items():
        vector = module.scale.detach().cpu()
        tensors[f"{PEFT_PREFIX}{hf_module_name(name, family)}.ia3_l"] = (
            vector[None, :] if module.feedforward else vector[:, None]).contiguous()
    config = {"peft_type": "IA3", "task_type": "CAUSAL_LM", "target_modules": sorted(cfg.target_modules),
              "feedforward_modules": sorted(cfg.feedforward_modules), "fan_in_fan_out": False,
              "init_ia3_weights": True, "inference_mode": True, "modules_to_save": None}
    return write_peft_adapter(out_dir, tensors, config)


def load_ia3_adapter(model: nn.Module, adapter_dir: str | Path, raw: dict[str, Any] | None = None) -> list[str]:
    path = Path(adapter_dir)
    raw = read_adapter_config(path) if raw is None else raw
    if raw.get("peft_type") != "IA3":
        raise LlmkitError(f"{path} holds a {raw.get('peft_type')} adapter, not IA3")
    as_list = lambda v: [v] if isinstance(v, str) else list(v or [])
    names = apply_ia3(model, IA3Config(as_list(raw["target_modules"]), as_list(raw.get("feedforward_modules"))))
    modules, family = ia3_modules(model), hf_family(model.cfg)
    for key, tensor in load_file(str(path / ADAPTER_WEIGHTS)).items():
        hf_module = key.removeprefix(PEFT_PREFIX).rpartition(".ia3_l")[0]
        modules[llmkit_module_name(hf_module, family)].scale.data.copy_(tensor.flatten())
    return names


@register
class IA3Method(AdapterMethod):
    name, mergeable = "ia3", True
    peft_type = "IA3"
    save, load = staticmethod(save_ia3_adapter), staticmethod(load_ia3_adapter)

    def apply(self, model: nn.Module, cfg) -> None:
        apply_ia3(model, cfg.ia3)

    def merge(self, model: nn.Module) -> nn.Module:
        return merge_ia3(model)
