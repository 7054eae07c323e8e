"""LoRA (Hu et al., arXiv 2106.09685) as a transform from outside the model: chosen nn.Linear
modules are wrapped so that y = W x + (alpha / r) * B A x, with W frozen, A (r, in) and B (out, r)
trained, B initialised to zero (the wrapped model starts exactly equal to the base). rsLoRA
(arXiv 2312.03732) scales by alpha / sqrt(r) instead.

Adapters are saved in PEFT's layout (adapter_config.json + adapter_model.safetensors with
`base_model.model.<HF module>.lora_A.weight` keys), so `peft` loads llmkit adapters onto the
transformers model and llmkit loads PEFT-trained adapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
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
from llmkit.quant.nf4 import NF4Linear


@dataclass
class LoraConfig:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # Linear names, by suffix
    use_rslora: bool = False
    use_dora: bool = False  # DoRA (arXiv 2402.09353): learn each output row's magnitude separately

    @property
    def scaling(self) -> float:
        return self.alpha / (math.sqrt(self.r) if self.use_rslora else self.r)


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear | NF4Linear, cfg: LoraConfig):
        super().__init__()
        self.base, self.scaling, self.merged = base, cfg.scaling, False
        self.lora_A = nn.Linear(base.in_features, cfg.r, bias=False, device=base.weight.device, dtype=base.weight.dtype)
        self.lora_B = nn.Linear(cfg.r, base.out_features, bias=False, device=base.weight.device, dtype=base.weight.dtype)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as PEFT does
        nn.init.zeros_(self.lora_B.weight)
        self.magnitude = None
        if cfg.use_dora:  # m starts at the row norms of W, so the wrapped layer starts equal to the base
            self.magnitude = nn.Parameter(base.weight.detach().float().norm(dim=1).to(base.weight.dtype))
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)

    def delta_weight(self) -> torch.Tensor:  # (out, in)
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        update = self.lora_B(self.lora_A(self.dropout(x))) * self.scaling
        if self.magnitude is None:
            return self.base(x) + update
        # DoRA: y = m / ||W + s B A||_row * (W x + s B A x) + b, the norm treated as a constant (paper 4.3)
        scale = self.magnitude / self._dora_norm().detach()  # (out,)
        y = torch.nn.functional.linear(x, self.base.weight) * scale + update * scale
        return y if self.base.bias is None else y + self.base.bias

    def _dora_norm(self) -> torch.Tensor:
        return (self.base.weight + self.delta_weight()).norm(dim=1)  # (out,)

    @torch.no_grad()
    def merge(self) -> None:
        if not isinstance(self.base, nn.Linear):
            raise LlmkitError("a QLoRA adapter cannot be merged into 4-bit weights; merge it into the "
                              "full-precision checkpoint with `llmkit merge`")
        if not self.merged:
            if self.magnitude is not None:
                self._merge_scale = self.magnitude / self._dora_norm()  # kept to undo the merge
                self.base.weight.copy_((self.base.weight + self.delta_weight()) * self._merge_scale[:, None])
            else:
                self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    def merged_base(self) -> nn.Module:
        """The base Linear with this adapter folded in."""
        self.merge()
        return self.base

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            if self.magnitude is not None:
                self.base.weight.copy_(self.base.weight / self._merge_scale[:, None] - self.delta_weight())
            else:
                self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False


def apply_lora(model: nn.Module, cfg: LoraConfig) -> list[str]:
    """Freeze the model and wrap the target Linears; returns the wrapped module names."""
    names = freeze_and_select(model, cfg.target_modules, (nn.Linear, NF4Linear), exclude=("lm_head",))
    wrap_modules(model, names, lambda name, base: LoRALinear(base, cfg))
    model.lora_config = cfg
    return names


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return modules_of(model, LoRALinear)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain Linear back (for export)."""
    return replace_modules(model, LoRALinear, LoRALinear.merged_base)


def save_adapter(model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
    """adapter_config.json + adapter_model.safetensors in PEFT's layout, written atomically."""
    cfg, family = model.lora_config, hf_family(model.cfg)
    tensors = {}
    for name, module in lora_modules(model).items():
        prefix = PEFT_PREFIX + hf_module_name(name, family)
        tensors[f"{prefix}.lora_A.weight"] = module.lora_A.weight.detach().contiguous().cpu()
        tensors[f"{prefix}.lora_B.weight"] = module.lora_B.weight.detach().contiguous().cpu()
        if module.magnitude is not None:
            tensors[f"{prefix}.lora_magnitude_vector"] = module.magnitude.detach().contiguous().cpu()
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": cfg.r, "lora_alpha": cfg.alpha,
              "lora_dropout": cfg.dropout, "target_modules": sorted(cfg.target_modules), "use_rslora": cfg.use_rslora,
              "use_dora": cfg.use_dora,
              "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
              "init_lora_weights": True, "base_model_name_or_path": str(base_model)}
    return write_peft_adapter(out_dir, tensors, config)


def load_lora_adapter(model: nn.Module, adapter_dir: str | Path, raw: dict[str, Any] | None = None) -> list[str]:
    """Wrap `model` as the adapter's config says and load its weights (PEFT or llmkit-written)."""
    path = Path(adapter_dir)
    raw = read_adapter_config(path) if raw is None else raw
    if raw.get("peft_type", "LORA") != "LORA":
        raise LlmkitError(f"adapter type {raw['peft_type']} is not LoRA; llmkit reads LoRA adapters in PEFT's layout")
    targets = raw["target_modules"]
    targets = [targets] if isinstance(targets, str) else list(targets)
    cfg = LoraConfig(r=raw["r"], alpha=raw["lora_alpha"], dropout=raw.get("lora_dropout", 0.0),
                     target_modules=targets, use_rslora=raw.get("use_rslora", False),
                     use_dora=raw.get("use_dora", False))
    names = apply_lora(model, cfg)
    modules = lora_modules(model)
    for key, name, part, tensor in lora_tensors(path, model.cfg):
        if name not in modules:
            raise LlmkitError(f"adapter tensor {key} targets {name}, which the adapter config does not wrap")
        target = modules[name].magnitude if part == "magnitude_vector" else getattr(modules[name], f"lora_{part}").weight
        target.data.copy_(tensor.reshape(target.shape))
    return names


def lora_tensors(adapter_dir: str | Path, model_cfg):
    """(PEFT key, llmkit module name, part: "A", "B" or "magnitude_vector", tensor) of each tensor of
    a LoRA adapter in PEFT's layout."""
    family = hf_family(model_cfg)
    for key, tensor in load_file(str(Path(adapter_dir) / ADAPTER_WEIGHTS)).items():
        hf_module, _, leaf = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        leaf = leaf.replace(".default", "")  # PEFT may keep the adapter name in the key
        yield key, llmkit_module_name(hf_module, family), leaf.split(".")[0], tensor


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights (buffers of NF4Linear) count in the total."""
    total = sum(p.numel() for p in model.parameters())
    total += sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, NF4Linear))
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


@register
class LoraMethod(AdapterMethod):
    name, mergeable, use_dora = "lora", True, False

    def matches(self, config: dict[str, Any]) -> bool:
        return config.get("peft_type", "LORA") == "LORA" and bool(config.get("use_dora")) == self.use_dora

    def apply(self, model: nn.Module, cfg) -> None:
        apply_lora(model, replace(cfg.lora, use_dora=cfg.lora.use_dora or self.use_dora))

    def save(self, model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
        return save_adapter(model, out_dir, base_model)

    def load(self, model: nn.Module, adapter_dir: str | Path, config: dict[str, Any]) -> None:
        load_lora_adapter(model, adapter_dir, config)

    def merge(self, model: nn.Module) -> nn.Module:
        return merge_lora(model)
