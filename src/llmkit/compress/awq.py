"""AWQ (Lin et al., arXiv 2306.00978): protect the weights that meet large activations by scaling
input channels before quantization. For each Linear, s = mean|x|^alpha (normalised), the weight
is quantized as Q(W diag(s)) and the input divided by s at run time; alpha in [0, 1] is chosen by
grid search to minimise ||X W^T - (X / s) Q(W diag(s))^T|| on calibration rows. (The paper folds
1/s into the preceding operation and searches per group of layers sharing an input; here each
Linear keeps its own `input_scale`.)"""

from __future__ import annotations

import torch

from llmkit.compress.quant_linear import dequantize, quant_params, quantize_with


def rtn(w: torch.Tensor, bits: int, group_size: int):
    scale, zero = quant_params(w, bits, group_size)
    return quantize_with(w, scale, zero, bits, group_size), scale, zero


def awq_quantize(weight: torch.Tensor, mean_abs: torch.Tensor, sample: torch.Tensor, bits: int = 4,
                 group_size: int = 128, grid: int = 20):
    """(codes, scales, zeros, input_scale (in,)) for weight (out, in); sample: input rows (N, in)."""
    w = weight.detach().float()
    reference = sample @ w.T  # (N, out)
    best = (float("inf"), None)
    for step in range(grid + 1):
        alpha = step / grid
        s = mean_abs.clamp(min=1e-5) ** alpha
        s = s / (s.max() * s.min()).sqrt()
        codes, scale, zero = rtn(w * s[None, :], bits, group_size)
        approx = (sample / s) @ dequantize(codes, scale, zero, group_size).T
        error = (approx - reference).pow(2).mean().item()
        if error < best[0]:
            best = (error, (codes, scale, zero, s))
    return best[1]
