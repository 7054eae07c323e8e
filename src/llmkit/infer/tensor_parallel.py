"""Tensor-parallel inference: under `torchrun --nproc_per_node N`, every rank loads the checkpoint
and keeps 1/N of each block's attention heads and MLP units (the training TP plan from
llmkit.dist.tensor_parallel: column-split q/k/v/gate/up, row-split o/down, one all-reduce per
sublayer). Embeddings and the head stay replicated, so every rank computes the same logits and
samples the same token with the same seed; rank 0 reports."""

from __future__ import annotations

import os

from torch import nn

from llmkit.dist.context import DistContext, init_distributed
from llmkit.dist.tensor_parallel import apply_tensor_parallel
from llmkit.train.config import ParallelConfig


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def shard_for_inference(model: nn.Module, device: str = "auto") -> DistContext:
    """Split `model` across the torchrun world in place (a no-op for one process)."""
    world = launched_world_size()
    ctx = init_distributed(ParallelConfig(tp=world, dp_shard=1), device)
    if world > 1:
        apply_tensor_parallel(model, ctx.mesh["tp"])
    return ctx
