"""The modules of a built model that hold its blocks, which every parallelism wraps or splits."""

from __future__ import annotations

from torch import nn


def model_stacks(model: nn.Module) -> list[nn.Module]:
    """The modules holding blocks: the model itself, or an encoder-decoder's two halves."""
    return [m for m in (model, getattr(model, "encoder", None), getattr(model, "decoder", None))
            if m is not None and hasattr(m, "layers")]
