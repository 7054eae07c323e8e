"""Apply parallelism and memory techniques to a built model, from outside, in torchtitan's order:
tensor parallel -> activation checkpointing -> compile -> FSDP (or DDP). World size 1 skips the
distributed steps and goes through the same function."""

from __future__ import annotations

import torch
from torch import nn

from llmkit.dist.context import DistContext
from llmkit.dist.config import ParallelConfig
from llmkit.dist.data_parallel import apply_data_parallel
from llmkit.dist.stacks import model_stacks, stack_blocks
from llmkit.dist.tensor_parallel import apply_tensor_parallel


def apply_activation_checkpointing(model: nn.Module, mode: str, every: int = 2) -> None:
    """Recompute block activations in backward: every block ("full"), or every n-th ("selective")."""
    if mode == "none":
        return
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for stack in model_stacks(model):
        for key, block in stack_blocks(stack):
            if mode == "full" or int(key) % every == 0:  # the layer number, also in a pipeline stage
                stack.layers[key] = checkpoint_wrapper(block)  # state-dict keys are unchanged (hooks strip the prefix)


def apply_compile(model: nn.Module) -> None:
    """Compile each block separately: repeated blocks reuse one compiled graph."""
    for stack in model_stacks(model):
        for key, block in stack_blocks(stack):
            stack.layers[key] = torch.compile(block)


def parallelize(model: nn.Module, ctx: DistContext, parallel: ParallelConfig, activation_checkpointing: str = "none",
                ac_every: int = 2, compile: bool = False, pipeline_stage: bool = False) -> nn.Module:
    """Apply, in torchtitan's order, tensor parallelism -> activation checkpointing -> per-block
    compile -> FSDP2/DDP; each step only where its degree or flag asks for it. `pipeline_stage`: the
    model is one pipeline stage's module (replicated by FSDP2, not DDP)."""
    if ctx.degree("tp") > 1:
        apply_tensor_parallel(model, ctx.mesh["tp"], parallel.sequence_parallel)
    apply_activation_checkpointing(model, activation_checkpointing, ac_every)
    if compile:
        apply_compile(model)
    if ctx.dp_size > 1:
        model = apply_data_parallel(model, parallel, ctx, pipeline_stage)
    return model
