"""The interface every parameter-efficient method implements, and PEFT's adapter directory layout
(adapter_config.json + adapter_model.safetensors) that their files use.

A method is one module in this package with one `AdapterMethod` subclass marked `@register`:

    apply(model, cfg)      freeze the model and add the trainable parts (cfg: the finetune config)
    save(model, out, base) write the trained parts (PEFT's layout where PEFT has the method)
    load(model, dir, cfg)  put saved parts onto a base model, ready to decode (generate, serve, evaluate)
    merge(model)           fold the parts into the weights, where the math allows (else a clear error)

and class attributes saying what it is: `name` (the --method value), `peft_type` (what its
adapter_config.json says; `matches(config)` decides from it), `output_dir` (where finetune writes
it) and `mergeable`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


def write_peft_adapter(out_dir: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """An adapter directory in PEFT's layout (weights + config), appearing whole or not at all."""
    with atomic_dir(out_dir, kind="adapter") as tmp:
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    return Path(out_dir)


def read_adapter_config(adapter_dir: str | Path) -> dict[str, Any]:
    path = Path(adapter_dir) / ADAPTER_CONFIG
    if not path.is_file():
        raise LlmkitError(f"{adapter_dir} is not an adapter directory: no {ADAPTER_CONFIG} (train one with "
                          "`llmkit finetune --method lora|dora|ia3|adapter|prefix|prompt|ptuning`)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LlmkitError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise LlmkitError(f"{path} must hold a JSON object")
    return config


class AdapterMethod:
    name = ""
    peft_type = ""  # the adapter_config.json "peft_type" this method writes and reads ("": none)
    output_dir = "adapter"  # OUT/<output_dir> is where `llmkit finetune` saves it
    mergeable = False
    merges_into_full_precision_base = False  # QLoRA: final/ is the adapter merged into the unquantized base

    def matches(self, config: dict[str, Any]) -> bool:
        """Whether an adapter_config.json describes this method."""
        return bool(self.peft_type) and config.get("peft_type") == self.peft_type

    def apply(self, model: nn.Module, cfg) -> None:
        raise NotImplementedError

    def save(self, model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
        raise NotImplementedError

    def load(self, model: nn.Module, adapter_dir: str | Path, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def merge(self, model: nn.Module) -> nn.Module:
        raise LlmkitError(f"{self.name} adapters cannot be folded into the weights; load them with --adapter DIR "
                          "(generate, chat, serve, evaluate) or LLM.load(path, adapter=DIR)")
