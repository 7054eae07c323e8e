"""Normalisation layers: LayerNorm and RMSNorm (arXiv 1910.07467), chosen by `build_norm`."""

from __future__ import annotations

import torch
from torch import nn

from llmkit.model.config import ModelConfig


class RMSNorm(nn.Module):
    """Scale by the root mean square; computed in fp32 like the Llama reference, then cast back.
    With `offset` (Gemma) the scale is offset + weight, applied in fp32 before the cast, as Gemma does."""

    def __init__(self, dim: int, eps: float = 1e-6, offset: float = 0.0):
        super().__init__()
        self.eps, self.offset = eps, offset
        self.weight = nn.Parameter(torch.full((dim,), 1.0 - offset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.offset:
            return (h * (self.offset + self.weight.float())).to(x.dtype)
        return self.weight * h.to(x.dtype)

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, 1.0 - self.offset)


def build_norm(cfg: ModelConfig, dim: int | None = None) -> nn.Module:
    """The config's norm over `dim` features (default d_model)."""
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim or cfg.d_model, cfg.norm_eps, cfg.norm_offset)
    return nn.LayerNorm(dim or cfg.d_model, eps=cfg.norm_eps, bias=cfg.norm_bias)
