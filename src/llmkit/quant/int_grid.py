"""Integer grids for weights: per-group scale (and zero point) by round-to-nearest, the codes, and
dequantisation. Shared by quantization-aware training (llmkit.train.fake_quant) and compression
(llmkit.compress), so a model trained with fake quantization is quantized onto the same grid.

    8 bits: symmetric, w = q * scale, q in [-127, 127]
    4 bits: asymmetric, w = (q - zero) * scale, q in [0, 15]
    group_size 0: one group per output row (per channel)
"""

from __future__ import annotations

import torch

from llmkit.errors import LlmkitError


def split_groups(w: torch.Tensor, group_size: int) -> torch.Tensor:
    """(out, in) -> (out, in / g, g); group_size 0 means one group per row (per-channel)."""
    g = group_size or w.shape[1]
    if w.shape[1] % g:
        raise LlmkitError(f"in_features {w.shape[1]} is not a multiple of --group-size {g}")
    return w.reshape(w.shape[0], w.shape[1] // g, g)


def quant_params(w: torch.Tensor, bits: int, group_size: int,
                 clip: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Round-to-nearest (scale, zero) per group, each (out, n_groups). clip (a number or one per
    group) shrinks the range to clip * [min, max]: the outliers saturate, the rest round finer."""
    grouped = split_groups(w.float(), group_size)
    if bits == 8:
        return (grouped.abs().amax(-1) * clip).clamp(min=1e-8) / 127, None
    lo, hi = grouped.amin(-1).clamp(max=0) * clip, grouped.amax(-1).clamp(min=0) * clip
    scale = ((hi - lo) / 15).clamp(min=1e-8)
    return scale, torch.round(-lo / scale).clamp(0, 15)


def quantize_with(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int,
                  group_size: int) -> torch.Tensor:
    """Integer codes (out, in) of w for given per-group parameters."""
    grouped = split_groups(w.float(), group_size)
    if bits == 8:
        q = torch.round(grouped / scale[..., None]).clamp(-127, 127)
    else:
        q = torch.round(grouped / scale[..., None] + zero[..., None]).clamp(0, 15)
    return q.reshape(w.shape)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, group_size: int) -> torch.Tensor:
    grouped = split_groups(q.float(), group_size)
    if zero is not None:
        grouped = grouped - zero[..., None]
    return (grouped * scale[..., None]).reshape(q.shape)
