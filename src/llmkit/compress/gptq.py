"""GPTQ (Frantar et al., arXiv 2210.17323): quantize a weight matrix one input column at a time,
spreading each column's rounding error over the columns not yet quantized with the inverse
Hessian of the layer's inputs (H = X^T X), so that ||X W^T - X Q^T|| stays small. Lazy batches of
`block` columns; group-wise parameters are fixed from the (already updated) weights when a group
starts, as in the reference implementation. Here the Hessians come from one pass of the
full-precision model (llmkit.compress.calibration), not layer by layer through quantized ones."""

from __future__ import annotations

import torch

from llmkit.compress.calibration import inverse_hessian_factor
from llmkit.compress.quant_linear import quant_params


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, bits: int = 4, group_size: int = 128,
                  block: int = 128, damp: float = 0.01, act_order: bool = False):
    """(codes (out, in), scales (out, groups), zeros (out, groups) or None) for weight (out, in).

    act_order: quantize the columns with the largest activations first (the reference's desc_act),
    with each group's parameters fixed from the original weights ("static groups"), so the codes
    keep their natural group layout."""
    if act_order:
        return _act_order(weight, hessian, bits, group_size, block, damp)
    w, h_inv = inverse_hessian_factor(weight, hessian, damp)  # (out, in), (in, in) in fp64
    w, h_inv = w.float(), h_inv.float()  # the column loop in fp32, as the reference implementation runs it
    n_in = w.shape[1]
    group = group_size or n_in
    codes = torch.zeros_like(w)
    scales, zeros = [], []
    for start in range(0, n_in, block):
        end = min(start + block, n_in)
        w_block, err_block, h_block = w[:, start:end].clone(), torch.zeros_like(w[:, start:end]), h_inv[start:end, start:end]
        for i in range(end - start):
            col = start + i
            if col % group == 0:  # parameters of the group starting here, from the updated weights
                scale, zero = quant_params(torch.cat([w_block[:, i:], w[:, end:]], 1)[:, :group].float(), bits, 0)
                scale, zero = scale[:, 0], None if zero is None else zero[:, 0]
                scales.append(scale)
                zeros.append(zero)
            q = _round(w_block[:, i], scale, zero, bits)
            codes[:, col] = q
            dequant = (q - (zero if zero is not None else 0)) * scale
            err = (w_block[:, i] - dequant) / h_block[i, i]
            w_block[:, i:] -= err[:, None] * h_block[i, i:][None, :]
            err_block[:, i] = err
        w[:, end:] -= err_block @ h_inv[start:end, end:]
    scale_t = torch.stack(scales, 1).float()
    zero_t = None if zeros[0] is None else torch.stack(zeros, 1).float()
    return codes, scale_t, zero_t


def _act_order(weight, hessian, bits, group_size, block, damp):
    n_in = weight.shape[1]
    group = group_size or n_in
    static = [quant_params(weight[:, g:g + group].float(), bits, 0) for g in range(0, n_in, group)]
    order = torch.argsort(torch.diag(hessian), descending=True)  # (in,) the busiest inputs first
    w, h_inv = inverse_hessian_factor(weight[:, order], hessian[order][:, order], damp)
    w, h_inv = w.float(), h_inv.float()
    codes = torch.zeros_like(w)
    for start in range(0, n_in, block):
        end = min(start + block, n_in)
        w_block, err_block, h_block = w[:, start:end].clone(), torch.zeros_like(w[:, start:end]), h_inv[start:end, start:end]
        for i in range(end - start):
            scale, zero = (p[:, 0] if p is not None else None for p in static[int(order[start + i]) // group])
            q = _round(w_block[:, i], scale, zero, bits)
            codes[:, start + i] = q
            err = (w_block[:, i] - (q - (zero if zero is not None else 0)) * scale) / h_block[i, i]
            w_block[:, i:] -= err[:, None] * h_block[i, i:][None, :]
            err_block[:, i] = err
        w[:, end:] -= err_block @ h_inv[start:end, end:]
    natural = torch.empty_like(codes)
    natural[:, order] = codes  # back to the original column order
    scales = torch.cat([s for s, _ in static], 1).float()
    zeros = None if static[0][1] is None else torch.cat([z for _, z in static], 1).float()
    return natural, scales, zeros


def _round(column: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int) -> torch.Tensor:
    if bits == 8:
        return torch.round(column / scale).clamp(-127, 127)
    return torch.round(column / scale + zero).clamp(0, 15)
