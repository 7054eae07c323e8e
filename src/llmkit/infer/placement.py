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
    """Key/value heads of this rank's attention layers (all of them without tensor parallelism)."""
    from llmkit.model.attention import Attention

    return next((m.n_kv_head for m in model.modules() if isinstance(m, Attention)), model.cfg.n_kv_head)
