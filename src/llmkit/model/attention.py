"""Multi-head, multi-query and grouped-query attention (arXiv 1706.03762, 1911.02150, 2305.13245)
through `scaled_dot_product_attention`, with self- and cross-attention sharing one class.

Optional pieces, chosen by the config: RMSNorm of queries and keys (per head as in Qwen3 and
Gemma 3, or across all heads as in OLMo 2), and Gemma 2's soft-capped scores,
cap * tanh(scores / cap), which SDPA cannot express, so those layers compute attention directly.
Attached from outside: a `KeyValuePrefix` (`attn.prefix`), learned keys and values that every
query sees (prefix tuning); and for inference, `attn.qkv_proj`, one module computing q, k and v
in one matmul (llmkit.infer.fuse), which then replaces the three projections. Head counts are read from the projections' outputs, so a tensor-
parallel shard of the projections needs no change to this module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.model.config import ModelConfig
from llmkit.model.norms import build_norm
from llmkit.model.positions import apply_rotary


class KVCache(Protocol):
    """What a forward pass needs of a KV cache (llmkit.decode's static and paged caches implement it)."""

    computes_attention: ClassVar[bool]  # False: attention calls `update`; True: it is an AttendingKVCache
    # True when this pass attends exactly its own new tokens, right-padded (a fresh prefill): causal
    # attention then needs no mask, and the fused kernels apply it
    keys_are_queries: bool

    def key_positions(self, pos: torch.Tensor) -> torch.Tensor:
        """Logical positions (B, Tk) of every key attended this pass; called once, before `update`."""

    def update(self, layer_idx: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Store this pass's k, v (B, Hkv, T, D); return every attended key and value (B, Hkv, Tk, D)."""


class AttendingKVCache(Protocol):
    """A cache that computes attention itself, with its own kernel (the paged decode step)."""

    computes_attention: ClassVar[bool]  # True

    def key_positions(self, pos: torch.Tensor) -> torch.Tensor: ...

    def attend(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """Store k, v and return attention of q (B, H, T, D) over every cached key: (B, H, T, D)."""


@dataclass
class AttentionContext:
    """What every layer of one forward pass shares: positions, rotation tables, mask, cache."""

    pos: torch.Tensor  # (B, T) logical positions of the queries
    mask: torch.Tensor | None = None  # (B, 1|H, Tq, Tk) bool or additive float; None with is_causal
    is_causal: bool = False
    rotation: tuple[torch.Tensor, torch.Tensor] | None = None
    cache: KVCache | AttendingKVCache | None = None
    sliding: "AttentionContext | None" = None  # the sliding layers' own, when layers are of two kinds


class KeyValuePrefix(nn.Module):
    """n learned key and value vectors per KV head, placed before every layer's keys and visible to
    every query (Li & Liang, arXiv 2101.00190). They are used as they are (no rotary rotation),
    like PEFT's prefix tuning, which passes them as already-cached keys."""

    def __init__(self, n_kv_head: int, n_virtual: int, head_dim: int, device=None, dtype=None):
        super().__init__()
        shape = (n_kv_head, n_virtual, head_dim)
        self.keys = nn.Parameter(torch.randn(shape, device=device, dtype=dtype) * 0.02)  # (Hkv, n, D)
        self.values = nn.Parameter(torch.randn(shape, device=device, dtype=dtype) * 0.02)

    def extend(self, k: torch.Tensor, v: torch.Tensor, ctx: AttentionContext, tq: int):
        """Keys/values (B, Hkv, Tk, D) with the prefix in front (B, Hkv, n + Tk, D), and the mask
        (B|1, 1|H, Tq, n + Tk) whose prefix columns are always visible (None: all visible)."""
        batch, n = k.shape[0], self.keys.shape[1]
        mask = ctx.mask
        if mask is None and ctx.is_causal:
            mask = torch.ones(tq, k.shape[2], dtype=torch.bool, device=k.device).tril(k.shape[2] - tq)[None, None]
        if mask is not None:
            visible = torch.ones(*mask.shape[:-1], n, dtype=torch.bool, device=k.device)
            if mask.dtype != torch.bool:
                visible = torch.zeros(*mask.shape[:-1], n, dtype=mask.dtype, device=k.device)  # additive: 0 = visible
            mask = torch.cat([visible, mask], dim=-1)
        k = torch.cat([self.keys.expand(batch, -1, -1, -1).to(k.dtype), k], dim=2)
        v = torch.cat([self.values.expand(batch, -1, -1, -1).to(v.dtype), v], dim=2)
        return k, v, mask


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.scale = cfg.attn_scale
        q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, q_dim, bias=cfg.attn_qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.attn_qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.attn_qkv_bias)
        self.o_proj = nn.Linear(q_dim, cfg.d_model, bias=cfg.attn_out_bias)
        self.qk_norm, self.softcap = cfg.qk_norm, cfg.attn_softcap
        if cfg.qk_norm != "none":
            per_head = cfg.qk_norm == "head"
            self.q_norm = build_norm(cfg, cfg.head_dim if per_head else q_dim)
            self.k_norm = build_norm(cfg, cfg.head_dim if per_head else kv_dim)
        self.prefix: KeyValuePrefix | None = None
        self.qkv_proj: nn.Module | None = None  # returns (q, k, v) projections of x

    def _heads(self, x: torch.Tensor, norm: nn.Module | None = None) -> torch.Tensor:
        """(B, T, n*D) -> (B, n, T, D), normalising per head or across heads first when configured."""
        if norm is not None and self.qk_norm == "full":
            x = norm(x)
        x = x.view(x.shape[0], x.shape[1], -1, self.head_dim)  # (B, T, n, D)
        if norm is not None and self.qk_norm == "head":
            x = norm(x)
        return x.transpose(1, 2)

    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory: torch.Tensor | None = None):
        """Self-attention over x (B, T, C), or cross-attention to `memory` (B, S, C) when given."""
        if self.qkv_proj is not None and memory is None:
            q, k, v = self.qkv_proj(x)  # (B, T, H*D), (B, T, Hkv*D) x 2
        else:
            source = x if memory is None else memory
            q, k, v = self.q_proj(x), self.k_proj(source), self.v_proj(source)
        q = self._heads(q, getattr(self, "q_norm", None))  # (B, H, T, D)
        k = self._heads(k, getattr(self, "k_norm", None))  # (B, Hkv, S, D)
        v = self._heads(v)
        if ctx.rotation is not None:
            q, k = apply_rotary(q, ctx.rotation), apply_rotary(k, ctx.rotation)
        if ctx.cache is not None and ctx.cache.computes_attention:  # a cache with its own kernel (paged decode)
            y = ctx.cache.attend(layer_idx, q, k, v, self.scale or self.head_dim**-0.5)  # (B, H, T, D)
            return self.o_proj(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))
        if ctx.cache is not None:
            k, v = ctx.cache.update(layer_idx, ctx.pos, k, v)  # (B, Hkv, Tk, D)
        mask, is_causal = ctx.mask, ctx.is_causal
        if self.prefix is not None and memory is None:
            k, v, mask = self.prefix.extend(k, v, ctx, q.shape[2])  # (B, Hkv, n + Tk, D)
            is_causal = False  # the mask now says it
        if self.softcap:
            y = capped_attention(q, k, v, mask, is_causal, self.scale or self.head_dim**-0.5, self.softcap)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.scale, enable_gqa=k.shape[1] != q.shape[1],
            )  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


def capped_attention(q, k, v, mask: torch.Tensor | None, is_causal: bool, scale: float, cap: float) -> torch.Tensor:
    """softmax(cap * tanh(q k^T * scale / cap) + mask) v, in fp32 like Gemma 2. q (B, H, T, D), k/v (B, Hkv, S, D)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, S, D)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale  # (B, H, T, S)
    scores = torch.tanh(scores / cap) * cap
    if mask is None and is_causal:
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril(k.shape[2] - q.shape[2])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    return torch.matmul(scores.softmax(-1).to(v.dtype), v)  # (B, H, T, D)
