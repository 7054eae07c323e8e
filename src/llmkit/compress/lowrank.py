"""Low-rank factorisation: each block Linear W (out, in) becomes two thin ones, W ~ U_r S_r V_r^T
split as up (out, r) = U_r S_r^(1/2) and down (r, in) = S_r^(1/2) V_r^T, from a truncated SVD; it
saves parameters when r < out * in / (out + in). With `activation_aware` (ASVD, Yuan et al., arXiv
2312.05821) the SVD is of W diag(s), s = mean|x| per input channel from calibration text, and
diag(1/s) is folded into `down`, so the truncation keeps what matters for the actual inputs.
`rank_ratio` is the kept share of each matrix's parameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from llmkit.compress.calibration import collect_input_stats, linear_targets
from llmkit.errors import LlmkitError


class LowRankLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    @property
    def weight(self) -> torch.Tensor:
        return self.up.weight @ self.down.weight  # (out, in)


def rank_for(linear: nn.Linear, rank_ratio: float) -> int:
    """The rank whose two factors hold rank_ratio of the matrix's parameters."""
    out_f, in_f = linear.out_features, linear.in_features
    return max(1, int(rank_ratio * out_f * in_f / (out_f + in_f)))


@torch.no_grad()
def factorise(linear: nn.Linear, rank: int, hessian: torch.Tensor | None = None, damp: float = 0.01) -> LowRankLinear:
    """Truncated SVD of the weight, or of W L (L the Cholesky factor of the input Hessian) when given."""
    w = linear.weight.detach().double()
    chol = None
    if hessian is not None:
        h = hessian.double() + damp * torch.diag(hessian).double().mean() * torch.eye(w.shape[1], dtype=torch.float64)
        chol = torch.linalg.cholesky(h)  # (in, in), lower
    u, sigma, vh = torch.linalg.svd(w if chol is None else w @ chol, full_matrices=False)
    root = sigma[:rank].sqrt()
    up, down = u[:, :rank] * root[None, :], root[:, None] * vh[:rank]  # (out, r), (r, in)
    if chol is not None:  # down L^-1: solve X L = down for X
        down = torch.linalg.solve_triangular(chol, down, upper=False, left=False)
    module = LowRankLinear(linear.in_features, linear.out_features, rank, linear.bias is not None,
                           linear.weight.device, linear.weight.dtype)
    module.up.weight.copy_(up)
    module.down.weight.copy_(down)
    if linear.bias is not None:
        module.up.bias.copy_(linear.bias)
    return module


def lowrank_model(model: nn.Module, rank_ratio: float = 0.5, activation_aware: bool = False,
                  calibration: Iterable[torch.Tensor] | None = None) -> dict[str, int]:
    """Factorise every block Linear in place; returns each one's rank."""
    if not 0 < rank_ratio < 1:
        raise LlmkitError(f"--rank-ratio must be in (0, 1), got {rank_ratio}")
    names = linear_targets(model)
    if activation_aware and calibration is None:
        raise LlmkitError("--activation-aware needs calibration text: pass --calib FILE (or the data directory)")
    stats = collect_input_stats(model, calibration, names, keep_rows=0) if activation_aware else {}
    ranks = {}
    for name in names:
        linear = model.get_submodule(name)
        ranks[name] = rank_for(linear, rank_ratio)
        hessian = stats[name].hessian if activation_aware else None
        model.set_submodule(name, factorise(linear, ranks[name], hessian))
    return ranks
