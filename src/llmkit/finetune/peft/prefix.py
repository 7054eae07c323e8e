"""Prefix tuning (Li & Liang, arXiv 2101.00190): every attention layer gets n trained key and value
vectors per KV head that all queries can attend to, while the whole model stays frozen. Applied
from outside: each `Attention` gets a `KeyValuePrefix` (llmkit.model.attention), which the
attention places in front of its keys and values after any KV cache, so every cache layout
(static, paged) generates with it.

Saved in PEFT's directory layout with peft_type LLMKIT_PREFIX and llmkit's tensor names: the real
tokens here keep positions 0.., where PEFT's PREFIX_TUNING puts them after the prefix, so the two are
not interchangeable for rotary models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from llmkit.errors import LlmkitError
from llmkit.finetune.peft import register
from llmkit.finetune.peft.base import ADAPTER_WEIGHTS, AdapterMethod, read_adapter_config, write_peft_adapter
from llmkit.model.attention import Attention, KeyValuePrefix

PEFT_TYPE = "LLMKIT_PREFIX"


def apply_prefix_tuning(model: nn.Module, n_virtual: int = 20) -> int:
    """Freeze the model and give every self-attention layer a trained prefix; returns the trainable count."""
    if model.cfg.arch != "decoder":
        raise LlmkitError("prefix tuning supports decoder-only models")
    for p in model.parameters():
        p.requires_grad_(False)
    for attention in [m for m in model.modules() if isinstance(m, Attention)]:
        weight = attention.k_proj.weight
        n_kv_head = weight.shape[0] // attention.head_dim
        attention.prefix = KeyValuePrefix(n_kv_head, n_virtual, attention.head_dim, weight.device, weight.dtype)
    model.prefix_tokens = n_virtual
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_prefix(model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if ".prefix." in name}
    if not tensors:
        raise LlmkitError("this model has no prefix (apply_prefix_tuning first)")
    return write_peft_adapter(out_dir, tensors, {"peft_type": PEFT_TYPE, "num_virtual_tokens": model.prefix_tokens})


def load_prefix(model: nn.Module, prefix_dir: str | Path, config: dict[str, Any] | None = None) -> None:
    path = Path(prefix_dir)
    config = read_adapter_config(path) if config is None else config
    apply_prefix_tuning(model, int(config["num_virtual_tokens"]))
    unexpected = model.load_state_dict(load_file(str(path / ADAPTER_WEIGHTS)), strict=False).unexpected_keys
    if unexpected:
        raise LlmkitError(f"{path / ADAPTER_WEIGHTS} holds tensors this model has no place for: {unexpected[:3]}")


@register
class PrefixMethod(AdapterMethod):
    name = output_dir = "prefix"
    peft_type = PEFT_TYPE
    save, load = staticmethod(save_prefix), staticmethod(load_prefix)

    def apply(self, model: nn.Module, cfg) -> None:
        apply_prefix_tuning(model, cfg.prompt_tokens)
