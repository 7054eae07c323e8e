"""Bottleneck adapters (Houlsby et al., arXiv 1902.00751) as a transform from outside the model:
after each block's attention output projection and MLP down projection, a small residual MLP
h + up(act(down(h))) with hidden size `bottleneck`. The up projection starts at zero, so the
adapted model starts equal to the base; only adapters train. Unlike LoRA they cannot be folded
into the weights (the nonlinearity is in the way); they are saved in PEFT's directory layout (PEFT
has no such method: adapter_config.json says peft_type LLMKIT_BOTTLENECK, the tensors keep llmkit's
module names) and put back onto the base model with `load_bottleneck_adapters`, or `--adapter DIR`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from llmkit.errors import LlmkitError
from llmkit.finetune.peft import register
from llmkit.finetune.peft.base import ADAPTER_WEIGHTS, AdapterMethod, read_adapter_config, write_peft_adapter
from llmkit.finetune.peft.targets import freeze_and_select, wrap_modules

PEFT_TYPE = "LLMKIT_BOTTLENECK"


@dataclass
class BottleneckConfig:
    bottleneck: int = 64
    target_modules: list[str] = field(default_factory=lambda: ["o_proj", "down_proj"])


class BottleneckAdapter(nn.Module):
    def __init__(self, base: nn.Linear, bottleneck: int):
        super().__init__()
        self.base = base
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.down = nn.Linear(base.out_features, bottleneck, **kw)
        self.up = nn.Linear(bottleneck, base.out_features, **kw)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x)
        return h + self.up(F.gelu(self.down(h)))


def apply_bottleneck_adapters(model: nn.Module, cfg: BottleneckConfig) -> list[str]:
    names = wrap_modules(model, freeze_and_select(model, cfg.target_modules),
                         lambda name, base: BottleneckAdapter(base, cfg.bottleneck))
    model.bottleneck_config = cfg
    return names


def save_bottleneck_adapters(model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    cfg = model.bottleneck_config
    return write_peft_adapter(out_dir, tensors, {"peft_type": PEFT_TYPE, "bottleneck": cfg.bottleneck,
                                                 "target_modules": list(cfg.target_modules)})


def load_bottleneck_adapters(model: nn.Module, adapter_dir: str | Path, config: dict[str, Any] | None = None) -> None:
    path = Path(adapter_dir)
    config = read_adapter_config(path) if config is None else config
    apply_bottleneck_adapters(model, BottleneckConfig(int(config["bottleneck"]), list(config["target_modules"])))
    unexpected = model.load_state_dict(load_file(str(path / ADAPTER_WEIGHTS)), strict=False).unexpected_keys
    if unexpected:
        raise LlmkitError(f"{path / ADAPTER_WEIGHTS} holds tensors this model has no place for: {unexpected[:3]}")


@register
class BottleneckMethod(AdapterMethod):
    name = "adapter"
    peft_type = PEFT_TYPE
    save, load = staticmethod(save_bottleneck_adapters), staticmethod(load_bottleneck_adapters)

    def apply(self, model: nn.Module, cfg) -> None:
        apply_bottleneck_adapters(model, cfg.adapter)
