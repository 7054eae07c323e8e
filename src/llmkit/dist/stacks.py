"""The modules of a built model that hold its blocks, which every parallelism wraps or splits."""

from __future__ import annotations

from torch import nn


def model_stacks(model: nn.Module) -> list[nn.Module]:
    """The modules holding blocks: the model itself, or an encoder-decoder's two halves."""
    return [m for m in (model, getattr(model, "encoder", None), getattr(model, "decoder", None))
            if m is not None and hasattr(m, "layers")]


def stack_blocks(stack: nn.Module) -> list[tuple[int | str, nn.Module]]:
    """(key, block) pairs of one stack: a ModuleList's indices, or a pipeline stage's ModuleDict keys
    (the block's layer number as a string). `stack.layers[key] = wrapped` replaces a block in both."""
    layers = stack.layers
    return list(layers.items()) if isinstance(layers, nn.ModuleDict) else list(enumerate(layers))


def all_blocks(model: nn.Module) -> list[nn.Module]:
    return [block for stack in model_stacks(model) for _, block in stack_blocks(stack)]
