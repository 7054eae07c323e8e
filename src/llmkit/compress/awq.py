"""AWQ (Lin et al., arXiv 2306.00978): protect the weights that meet large activations by scaling
input channels before quantization, then clip each group's range. Both searches minimise the
layer's output error on calibration rows X:

1. scale: s = mean|x|^alpha (normalised), the weight quantized as Q(W diag(s)) and the input divided
   by s at run time; alpha in [0, 1] by grid search on ||X W^T - (X / s) Q(W diag(s))^T||.
   alpha = 0 is plain rounding, so the search never does worse than RTN on these rows.
2. clip: per (output row, input group) the shrink ratio r of the quantization range in
   [0.5, 1] with the least ||X_g (w_g - Q_r(w_g))^T||; r = 1 is again plain rounding.

(The paper folds 1/s into the preceding operation and searches per group of layers sharing an
input; here each Linear keeps its own `input_scale`.)"""

from __future__ import annotations

import torch

from llmkit.quant.int_grid import dequantize, quant_params, quantize_with, split_groups


def rtn(w: torch.Tensor, bits: int, group_size: int, clip: torch.Tensor | float = 1.0):
    scale, zero = quant_params(w, bits, group_size, clip)
    return quantize_with(w, scale, zero, bits, group_size), scale, zero


def search_scale(w: torch.Tensor, mean_abs: torch.Tensor, sample: torch.Tensor, bits: int, group_size: int,
                 grid: int = 20) -> torch.Tensor:
    """The per-input-channel scale s (in,) with the least output error after rounding W diag(s)."""
    reference = sample @ w.T  # (N, out)
    best_error, best_s = float("inf"), torch.ones_like(mean_abs)
    for step in range(grid + 1):
        alpha = step / grid
        s = mean_abs.clamp(min=1e-5) ** alpha
        s = s / (s.max() * s.min()).sqrt()
        codes, scale, zero = rtn(w * s[None, :], bits, group_size)
        error = ((sample / s) @ dequantize(codes, scale, zero, group_size).T - reference).pow(2).mean().item()
        if error < best_error:
            best_error, best_s = error, s
    return best_s


def search_clip(w: torch.Tensor, sample: torch.Tensor, bits: int, group_size: int, grid: int = 10,
                lowest: float = 0.5) -> torch.Tensor:
    """Per-group range shrink ratios (out, n_groups) with the least output error of each group."""
    x = split_groups(sample, group_size)  # (N, G, g): the input rows split like the weight's groups
    best_error = torch.full(split_groups(w, group_size).shape[:2], float("inf"))  # (out, G)
    best_clip = torch.ones_like(best_error)
    for step in range(grid + 1):
        ratio = 1.0 - (1.0 - lowest) * step / grid
        codes, scale, zero = rtn(w, bits, group_size, ratio)
        diff = split_groups(w - dequantize(codes, scale, zero, group_size), group_size)  # (out, G, g)
        error = torch.einsum("ngk,ogk->nog", x, diff).pow(2).sum(0)  # (out, G)
        better = error < best_error
        best_error, best_clip = torch.where(better, error, best_error), torch.where(better, ratio, best_clip)
    return best_clip


def awq_quantize(weight: torch.Tensor, mean_abs: torch.Tensor, sample: torch.Tensor, bits: int = 4,
                 group_size: int = 128, grid: int = 20):
    """(codes, scales, zeros, input_scale (in,)) for weight (out, in); sample: input rows (N, in)."""
    w = weight.detach().float()
    s = search_scale(w, mean_abs, sample, bits, group_size, grid)
    clip = search_clip(w * s[None, :], sample / s, bits, group_size)
    codes, scale, zero = rtn(w * s[None, :], bits, group_size, clip)
    return codes, scale, zero, s
