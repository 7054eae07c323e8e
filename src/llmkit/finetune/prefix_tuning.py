"""Prefix tuning (Li & Liang, arXiv 2101.00190): every attention layer gets n trained key and value
vectors per KV head that all queries can attend to, while the whole model stays frozen. Done from
outside the model by wrapping each `Attention` module; the wrapper computes q, k, v with the frozen
projections, prepends the prefix to the keys and values (after any KV cache, so generation with
the prefix works with the static cache) and widens the mask with always-visible prefix columns.

The prefix keys are used as they are (no rotary rotation), like PEFT's prefix tuning, which passes
them as already-cached keys. Saved as `prefix_tuning.safetensors` (per layer keys and values).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from llmkit.errors import LlmkitError
from llmkit.model.attention import Attention, AttentionContext
from llmkit.model.positions import apply_rotary

WEIGHTS_FILE = "prefix_tuning.safetensors"


def _prefix_columns(ctx: AttentionContext, n: int, tq: int, tk: int, device) -> torch.Tensor | None:
    """The real part of the mask with n always-visible prefix columns in front: (B|1, 1|H, Tq, n + Tk)."""
    mask = ctx.mask
    if mask is None:
        if not ctx.is_causal:
            return None  # everything visible already
        mask = torch.ones(tq, tk, dtype=torch.bool, device=device).tril(tk - tq)[None, None]  # (1, 1, Tq, Tk)
    visible = torch.ones(*mask.shape[:-1], n, dtype=torch.bool, device=device)
    if mask.dtype != torch.bool:
        visible = torch.zeros(*mask.shape[:-1], n, dtype=mask.dtype, device=device)  # additive: 0 = visible
    return torch.cat([visible, mask], dim=-1)


class PrefixAttention(nn.Module):
    def __init__(self, attn: Attention, n_virtual: int):
        super().__init__()
        self.attn, self.n_virtual = attn, n_virtual
        kw = {"device": attn.k_proj.weight.device, "dtype": attn.k_proj.weight.dtype}
        shape = (attn.n_kv_head, n_virtual, attn.head_dim)
        self.prefix_keys = nn.Parameter(torch.randn(shape, **kw) * 0.02)  # (Hkv, n, D)
        self.prefix_values = nn.Parameter(torch.randn(shape, **kw) * 0.02)

    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory=None):
        a, batch = self.attn, x.shape[0]
        if memory is not None or (ctx.cache is not None and hasattr(ctx.cache, "attend")):
            raise LlmkitError("prefix tuning supports decoder self-attention with the static KV cache only")
        q = a._heads(a.q_proj(x), a.n_head)  # (B, H, T, D)
        k, v = a._heads(a.k_proj(x), a.n_kv_head), a._heads(a.v_proj(x), a.n_kv_head)  # (B, Hkv, T, D)
        if ctx.rotation is not None:
            q, k = apply_rotary(q, ctx.rotation), apply_rotary(k, ctx.rotation)
        if ctx.cache is not None:
            k, v = ctx.cache.update(layer_idx, ctx.pos, k, v)  # (B, Hkv, Tk, D)
        mask = _prefix_columns(ctx, self.n_virtual, q.shape[2], k.shape[2], x.device)
        k = torch.cat([self.prefix_keys.expand(batch, -1, -1, -1).to(k.dtype), k], dim=2)  # (B, Hkv, n + Tk, D)
        v = torch.cat([self.prefix_values.expand(batch, -1, -1, -1).to(v.dtype), v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=a.scale,
                                           enable_gqa=a.n_kv_head != a.n_head)  # (B, H, T, D)
        return a.o_proj(y.transpose(1, 2).reshape(batch, x.shape[1], -1))


def apply_prefix_tuning(model: nn.Module, n_virtual: int = 20) -> int:
    """Freeze the model and give every self-attention layer a trained prefix; returns the trainable count."""
    if model.cfg.arch != "decoder":
        raise LlmkitError("prefix tuning supports decoder-only models")
    for p in model.parameters():
        p.requires_grad_(False)
    names = [name for name, m in model.named_modules() if isinstance(m, Attention)]
    for name in names:
        model.set_submodule(name, PrefixAttention(model.get_submodule(name), n_virtual))
    model.prefix_tokens = n_virtual
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_prefix(model: nn.Module, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if "prefix_" in name}
    if not tensors:
        raise LlmkitError("this model has no prefix (apply_prefix_tuning first)")
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"num_virtual_tokens": str(model.prefix_tokens)})
    tmp.replace(out / WEIGHTS_FILE)
    return out


def load_prefix(model: nn.Module, prefix_dir: str | Path) -> None:
    from safetensors import safe_open

    path = Path(prefix_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise LlmkitError(f"{path.parent} holds no {WEIGHTS_FILE} (train one with `llmkit finetune --method prefix`)")
    with safe_open(str(path), framework="pt") as handle:
        n_virtual = int(handle.metadata()["num_virtual_tokens"])
    apply_prefix_tuning(model, n_virtual)
    unexpected = model.load_state_dict(load_file(str(path)), strict=False).unexpected_keys
    if unexpected:
        raise LlmkitError(f"{path} holds tensors this model has no place for: {unexpected[:3]}")
