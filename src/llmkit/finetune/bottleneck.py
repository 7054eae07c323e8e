"""Bottleneck adapters (Houlsby et al., arXiv 1902.00751) as a transform from outside the model:
after each block's attention output projection and MLP down projection, a small residual MLP
h + up(act(down(h))) with hidden size `bottleneck`. The up projection starts at zero, so the
adapted model starts equal to the base; only adapters train. Unlike LoRA they cannot be folded
into the weights (the nonlinearity is in the way), so they are saved on their own
(`bottleneck_adapters.safetensors`) and put back onto the base model with
`load_bottleneck_adapters`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from llmkit.errors import LlmkitError
from llmkit.finetune.targets import freeze_and_select

WEIGHTS_FILE = "bottleneck_adapters.safetensors"


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
    names = freeze_and_select(model, cfg.target_modules)
    for name in names:
        model.set_submodule(name, BottleneckAdapter(model.get_submodule(name), cfg.bottleneck))
    model.bottleneck_config = cfg
    return names


def save_bottleneck_adapters(model: nn.Module, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"bottleneck": str(model.bottleneck_config.bottleneck),
                                          "targets": ",".join(model.bottleneck_config.target_modules)})
    tmp.replace(out / WEIGHTS_FILE)
    return out


def load_bottleneck_adapters(model: nn.Module, adapter_dir: str | Path) -> None:
    from safetensors import safe_open

    path = Path(adapter_dir) / WEIGHTS_FILE
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    apply_bottleneck_adapters(model, BottleneckConfig(int(meta["bottleneck"]), meta["targets"].split(",")))
    missing = model.load_state_dict(load_file(str(path)), strict=False).unexpected_keys
    if missing:
        raise LlmkitError(f"{path} holds tensors this model has no place for: {missing[:3]}")
