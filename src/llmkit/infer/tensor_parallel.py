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
from llmkit.dist.config import ParallelConfig


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def inference_context(device: str = "auto") -> DistContext:
    """The torchrun world as one tensor-parallel group (one process: a plain context)."""
    return init_distributed(ParallelConfig(tp=launched_world_size(), dp_shard=1), device)


def shard_for_inference(model: nn.Module, ctx: DistContext) -> None:
    """Split `model` across the context's tensor-parallel group in place (a no-op for one process)."""
    if ctx.distributed:
        apply_tensor_parallel(model, ctx.mesh["tp"])
