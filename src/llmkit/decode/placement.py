"""Where a model being served lives: its device and dtype, and the KV heads this rank holds.

Read from the token embedding, which is always resident: under layer streaming the blocks sit on
the meta device between uses, and under tensor parallelism the attention modules hold a share of
the heads."""

from __future__ import annotations

import torch
from torch import nn


def embedding_weight(model: nn.Module) -> torch.Tensor:
    weight = model.tok_embeddings.weight
    return weight.to_local() if hasattr(weight, "to_local") else weight


def model_device(model: nn.Module) -> torch.device:
    return embedding_weight(model).device


def model_dtype(model: nn.Module) -> torch.dtype:
    return embedding_weight(model).dtype


def kv_heads(model: nn.Module) -> int:
    """Key/value heads of this rank's attention layers (all of them without tensor parallelism): the
    width of what its key projection computes, over the head size. Asked of the projection itself,
    so adapters wrapped around it and tensor-parallel shards of it both answer correctly."""
    from llmkit.model.attention import Attention

    attention = next((m for m in model.modules() if isinstance(m, Attention)), None)
    if attention is None:
        return model.cfg.n_kv_head
    probe = torch.zeros(1, 1, model.cfg.d_model, device=model_device(model), dtype=model_dtype(model))
    try:
        with torch.no_grad():
            keys = attention.qkv_proj(probe)[1] if attention.qkv_proj is not None else attention.k_proj(probe)
            return keys.shape[-1] // attention.head_dim
    except (RuntimeError, NotImplementedError):  # weights streamed in only while a block runs: all heads
        return model.cfg.n_kv_head
