"""Building a model: on the meta device first (no memory), then materialised and initialised.

Initialisation: normal(0, init_std) for matrices, GPT-2's 1/sqrt(2N) down-scaling of the
projections that write into the residual stream, and DeepNet's beta = (8N)^(-1/4) gain on the
value/output/feed-forward weights when `deepnorm` is set (arXiv 2203.00555).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmkit.model.config import ModelConfig
from llmkit.model.transformer import EncoderDecoder, Transformer

RESIDUAL_WRITERS = ("o_proj.weight", "down_proj.weight")
DEEPNORM_SCALED = ("v_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def build_model(cfg: ModelConfig, device: str | torch.device = "meta", dtype: torch.dtype | None = None):
    """A model for `cfg`; on "meta" it holds no memory (for counting or `load_state_dict(assign=True)`)."""
    model_class = EncoderDecoder if cfg.arch == "encoder_decoder" else Transformer
    with torch.device("meta"):
        model = model_class(cfg)
    if str(device) != "meta":
        materialise(model, device, dtype)
    return model


def materialise(model: nn.Module, device, dtype=None, seed: int | None = None) -> nn.Module:
    model.to_empty(device=device)
    if dtype is not None:
        model.to(dtype)
    model.tie_weights()
    init_weights(model, model.cfg, seed)
    return model


@torch.no_grad()
def init_weights(model: nn.Module, cfg: ModelConfig, seed: int | None = None) -> None:
    generator = None if seed is None else torch.Generator(device="cpu").manual_seed(seed)
    depth = cfg.n_layer + cfg.n_encoder_layer
    for name, param in model.named_parameters():
        if param.ndim == 1:  # norms and biases
            nn.init.constant_(param, 1.0 - cfg.norm_offset) if name.endswith("norm.weight") else nn.init.zeros_(param)
            continue
        std = cfg.init_std
        if cfg.deepnorm and name.endswith(DEEPNORM_SCALED):
            std = (8 * depth) ** -0.25 * math.sqrt(2.0 / sum(param.shape))  # xavier-normal x beta
        elif name.endswith(RESIDUAL_WRITERS):
            std = std / math.sqrt(2 * depth)
        _normal(param, std, generator)


def _normal(param: torch.Tensor, std: float, generator) -> None:
    values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * std
    param.copy_(values.to(param.dtype))


def count_parameters(cfg: ModelConfig) -> int:
    """Exact parameter count, from a model built on the meta device (tied weights counted once)."""
    return sum(p.numel() for p in build_model(cfg).parameters())
