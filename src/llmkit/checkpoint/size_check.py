"""Refusing a config.json (or GGUF header) that describes a model this machine could not hold, before
any module is built or tensor read: a damaged or hostile file must not exhaust memory."""

from __future__ import annotations

import os
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.model import ModelConfig


MAX_LAYERS = 4096  # far beyond any published model; building more modules alone takes minutes


def estimate_parameters(cfg: ModelConfig) -> int:
    """Parameters from the shapes alone (no modules built): embeddings, attention, MLP or experts."""
    head_dim = cfg.head_dim or cfg.d_model // max(cfg.n_head, 1)
    kv_heads = cfg.n_kv_head or cfg.n_head
    attention = cfg.d_model * head_dim * (2 * cfg.n_head + 2 * kv_heads)
    mlp = 3 * cfg.d_model * cfg.d_ff * max(cfg.n_expert, 1)
    layers = cfg.n_layer + (cfg.n_encoder_layer or (cfg.n_layer if cfg.arch == "encoder_decoder" else 0))
    return layers * (attention + mlp) + cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)


def check_fits_in_memory(cfg: ModelConfig, path: Path) -> None:
    """Refuse a config that no file could back on this machine (1 byte per weight at the least)."""
    layers = cfg.n_layer + cfg.n_encoder_layer
    if min(cfg.n_layer, cfg.d_model, cfg.n_head, cfg.vocab_size, cfg.d_ff) < 1 or layers > MAX_LAYERS:
        raise LlmkitError(f"{path}/config.json describes an impossible model ({layers} layers, d_model {cfg.d_model}, "
                          f"{cfg.n_head} heads, vocabulary {cfg.vocab_size}); the file is damaged or not a model config")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    params = estimate_parameters(cfg)
    if memory and params > memory:
        raise LlmkitError(f"{path}/config.json describes about {params / 1e9:,.0f} B parameters, more than this "
                          f"machine's {memory / 2**30:.0f} GiB of memory could hold; it was not loaded")
