"""Unstructured and N:M pruning of the block Linears, in place (weights set to zero; the model keeps
its shapes, so a pruned checkpoint saves and serves like any other).

    magnitude  smallest |W| in each matrix
    wanda      smallest |W_ij| * ||X_j||_2 within each output row (Sun et al., arXiv 2306.11695): no
               weight update, one forward pass of calibration text
    sparsegpt  second-order pruning with error compensation (Frantar & Alistarh, arXiv 2301.00774):
               columns left to right, each pruned weight's error spread over the remaining columns
               with the inverse Hessian of the layer inputs, masks chosen per block of 128 columns
    --pattern N:M (e.g. 2:4, the semi-structured pattern sparse tensor cores run) keeps the M - N
    best-scored weights of every M consecutive inputs of a row, with any of the three scores.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from llmkit.compress.calibration import (
    LinearInputStats,
    compress_block_by_block,
    inverse_hessian_factor,
    linear_targets,
)
from llmkit.errors import LlmkitError

METHODS = ("magnitude", "wanda", "sparsegpt")


def parse_pattern(pattern: str | None) -> tuple[int, int] | None:
    """"2:4" -> (2 pruned, 4 in a group)."""
    if not pattern:
        return None
    try:
        n, m = (int(v) for v in pattern.split(":"))
    except ValueError:
        raise LlmkitError(f"--pattern {pattern!r}: expected N:M such as 2:4") from None
    if not 0 < n < m:
        raise LlmkitError(f"--pattern {pattern!r}: need 0 < N < M")
    return n, m


def prune_mask(score: torch.Tensor, sparsity: float, pattern: tuple[int, int] | None, per_row: bool) -> torch.Tensor:
    """True where a weight is pruned: the lowest scores, per matrix, per row, or N of every M inputs."""
    rows, cols = score.shape
    if pattern is not None:
        n, m = pattern
        if cols % m:
            raise LlmkitError(f"in_features {cols} is not a multiple of the pattern's group {m}")
        grouped = score.reshape(rows, cols // m, m)
        lowest = grouped.topk(n, dim=-1, largest=False).indices
        return torch.zeros_like(grouped, dtype=torch.bool).scatter_(-1, lowest, True).reshape(rows, cols)
    if per_row:
        k = int(cols * sparsity)
        lowest = score.topk(k, dim=1, largest=False).indices
        return torch.zeros_like(score, dtype=torch.bool).scatter_(1, lowest, True)
    k = int(score.numel() * sparsity)
    mask = torch.zeros(score.numel(), dtype=torch.bool)
    mask[score.flatten().topk(k, largest=False).indices] = True
    return mask.view_as(score)


def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float,
                    pattern: tuple[int, int] | None = None, block: int = 128, damp: float = 0.01) -> torch.Tensor:
    """The pruned (and compensated) weight (out, in)."""
    w, h_inv = inverse_hessian_factor(weight, hessian, damp)  # (out, in), (in, in)
    n_in = w.shape[1]
    for start in range(0, n_in, block):
        end = min(start + block, n_in)
        w_block, err_block, h_block = w[:, start:end].clone(), torch.zeros_like(w[:, start:end]), h_inv[start:end, start:end]
        saliency = w_block**2 / torch.diag(h_block)[None, :] ** 2  # OBS: the loss of removing each weight
        mask = prune_mask(saliency, sparsity, pattern, per_row=False) if pattern is None else \
            torch.zeros_like(w_block, dtype=torch.bool)
        for i in range(end - start):
            if pattern is not None and i % pattern[1] == 0:  # N:M: choose within the next group, as it arrives
                group = w_block[:, i:i + pattern[1]] ** 2 / torch.diag(h_block)[i:i + pattern[1]][None, :] ** 2
                mask[:, i:i + pattern[1]] = prune_mask(group, 0.0, pattern, per_row=False)
            column = w_block[:, i]
            pruned = torch.where(mask[:, i], torch.zeros_like(column), column)
            err = (column - pruned) / h_block[i, i]
            w_block[:, i:] -= err[:, None] * h_block[i, i:][None, :]
            w_block[:, i] = pruned
            err_block[:, i] = err
        w[:, start:end] = w_block
        w[:, end:] -= err_block @ h_inv[start:end, end:]
    return w.to(weight.dtype)


@torch.no_grad()
def prune_model(model: nn.Module, method: str, sparsity: float = 0.5, pattern: str | None = None,
                calibration: Iterable[torch.Tensor] | None = None) -> dict[str, float]:
    """Prune every block Linear in place; returns each one's achieved sparsity."""
    if method not in METHODS:
        raise LlmkitError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 <= sparsity < 1:
        raise LlmkitError(f"--sparsity must be in [0, 1), got {sparsity}")
    nm = parse_pattern(pattern)
    names = linear_targets(model)
    if method != "magnitude" and calibration is None:
        raise LlmkitError(f"{method} needs calibration text: pass --calib FILE (or the data directory)")
    achieved = {}

    def prune(name: str, stats: LinearInputStats | None) -> None:
        w = model.get_submodule(name).weight
        if method == "sparsegpt":
            w.copy_(sparsegpt_prune(w, stats.hessian, sparsity, nm))
        else:
            score = w.abs().float()
            if method == "wanda":  # ||X_j||_2 over calibration tokens = sqrt(n * H_jj)
                score = score * torch.diag(stats.hessian).sqrt().float()[None, :]
            w.masked_fill_(prune_mask(score, sparsity, nm, per_row=method == "wanda"), 0)
        achieved[name] = (w == 0).float().mean().item()

    if method == "magnitude":
        for name in names:
            prune(name, None)
    else:
        compress_block_by_block(model, calibration, names, prune, keep_rows=0)
    return achieved
