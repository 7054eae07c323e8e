"""Apply parallelism and memory techniques to a built model, from outside, in torchtitan's order:
tensor parallel -> activation checkpointing -> compile -> FSDP (or DDP). World size 1 skips the
distributed steps and goes through the same function."""

from __future__ import annotations

import torch
from torch import nn

from llmkit.dist.context import DistContext
from llmkit.train.config import PretrainConfig


def apply_activation_checkpointing(model: nn.Module, mode: str, every: int = 2) -> None:
    """Recompute block activations in backward: every block ("full"), or every n-th ("selective")."""
    if mode == "none":
        return
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for stack in model_stacks(model):
        for i, block in enumerate(stack.layers):
            if mode == "full" or i % every == 0:
                stack.layers[i] = checkpoint_wrapper(block)  # state-dict keys are unchanged (hooks strip the prefix)


def apply_compile(model: nn.Module) -> None:
    """Compile each block separately: repeated blocks reuse one compiled graph."""
    for stack in model_stacks(model):
        for i, block in enumerate(stack.layers):
            stack.layers[i] = torch.compile(block)


def model_stacks(model: nn.Module) -> list[nn.Module]:
    """The modules holding blocks: the model itself, or an encoder-decoder's two halves."""
    return [m for m in (model, getattr(model, "encoder", None), getattr(model, "decoder", None))
            if m is not None and hasattr(m, "layers")]


def parallelize(model: nn.Module, cfg: PretrainConfig, ctx: DistContext) -> nn.Module:
    if ctx.degree("tp") > 1:
        from llmkit.dist.tensor_parallel import apply_tensor_parallel

        apply_tensor_parallel(model, ctx.mesh["tp"], cfg.parallel.sequence_parallel)
    apply_activation_checkpointing(model, cfg.activation_checkpointing, cfg.ac_every)
    if cfg.compile:
        apply_compile(model)
    if ctx.dp_size > 1:
        from llmkit.dist.data_parallel import apply_data_parallel

        model = apply_data_parallel(model, cfg.parallel, ctx)
    return model
