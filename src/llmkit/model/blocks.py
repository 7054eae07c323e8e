"""Transformer blocks: the residual wirings, each one small class.

    pre-norm  (GPT-2, Llama):   x = x + f(norm(x))
    post-norm (original, GLM):  x = norm(alpha * x + f(x))   alpha = (2N)^(1/4) with DeepNorm
    parallel  (GPT-J, NeoX):    x = x + attn(norm1(x)) + mlp(norm2(x))
    sandwich  (Gemma 2/3):      x = x + post_norm(f(norm(x)))
    post_sublayer (OLMo 2):     x = x + norm(f(x))

A decoder block of an encoder-decoder model adds cross-attention between attention and MLP.
"""

from __future__ import annotations

from torch import nn

from llmkit.model.attention import Attention, AttentionContext
from llmkit.model.config import ModelConfig
from llmkit.model.mlp import build_mlp
from llmkit.model.norms import build_norm


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, cross_attention: bool = False):
        super().__init__()
        self.attn_norm, self.attn = build_norm(cfg), Attention(cfg)
        self.mlp_norm, self.mlp = build_norm(cfg), build_mlp(cfg)
        if cross_attention:
            self.cross_norm, self.cross_attn = build_norm(cfg), Attention(cfg)
        if cfg.residual == "sandwich":
            self.attn_post_norm, self.mlp_post_norm = build_norm(cfg), build_norm(cfg)

    def sublayers(self, ctx, layer_idx, memory, memory_ctx):
        """(norm, function) pairs in order; cross-attention only where the block has it."""
        yield self.attn_norm, lambda h: self.attn(h, ctx, layer_idx)
        if hasattr(self, "cross_attn"):
            yield self.cross_norm, lambda h: self.cross_attn(h, memory_ctx, layer_idx, memory)
        yield self.mlp_norm, self.mlp


class PreNormBlock(Block):
    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory=None, memory_ctx=None):
        for norm, fn in self.sublayers(ctx, layer_idx, memory, memory_ctx):
            x = x + fn(norm(x))
        return x


class PostNormBlock(Block):
    def __init__(self, cfg: ModelConfig, cross_attention: bool = False):
        super().__init__(cfg, cross_attention)
        self.alpha = (2 * cfg.n_layer) ** 0.25 if cfg.deepnorm else 1.0

    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory=None, memory_ctx=None):
        for norm, fn in self.sublayers(ctx, layer_idx, memory, memory_ctx):
            x = norm(self.alpha * x + fn(x))
        return x


class SandwichBlock(Block):
    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory=None, memory_ctx=None):
        x = x + self.attn_post_norm(self.attn(self.attn_norm(x), ctx, layer_idx))
        return x + self.mlp_post_norm(self.mlp(self.mlp_norm(x)))


class PostSublayerBlock(Block):
    """The norm sits on each sub-layer's output, inside the residual (OLMo 2)."""

    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory=None, memory_ctx=None):
        for norm, fn in self.sublayers(ctx, layer_idx, memory, memory_ctx):
            x = x + norm(fn(x))
        return x


class ParallelBlock(Block):
    def forward(self, x, ctx: AttentionContext, layer_idx: int, memory=None, memory_ctx=None):
        return x + self.attn(self.attn_norm(x), ctx, layer_idx) + self.mlp(self.mlp_norm(x))


def build_block(cfg: ModelConfig, cross_attention: bool = False) -> Block:
    if cfg.residual in ("parallel", "sandwich") and cross_attention:
        from llmkit.errors import LlmkitError

        raise LlmkitError(f"{cfg.residual} residual blocks have no cross-attention; use residual='pre' or 'post'")
    kinds = {"pre": PreNormBlock, "post": PostNormBlock, "parallel": ParallelBlock, "sandwich": SandwichBlock,
             "post_sublayer": PostSublayerBlock}
    return kinds[cfg.residual](cfg, cross_attention)
