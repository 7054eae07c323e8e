"""Statistics of each Linear's inputs on calibration text, gathered with forward hooks: the Hessian
proxy H = X^T X / n (GPTQ, SparseGPT, Wanda), the mean absolute activation per input channel (AWQ)
and a sample of input rows (AWQ's searches).

`compress_block_by_block` follows GPTQ and SparseGPT (Frantar & Alistarh, arXiv 2210.17323,
2301.00774): block i's statistics are gathered with blocks 0..i-1 already compressed, so each
block corrects for the error of those before it instead of fitting the full-precision inputs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import nn


class LinearInputStats:
    def __init__(self, in_features: int, keep_rows: int):
        self.hessian = torch.zeros(in_features, in_features, dtype=torch.float64)
        self.abs_sum = torch.zeros(in_features, dtype=torch.float64)
        self.rows, self.n, self.keep_rows = [], 0, keep_rows
        self.sample: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float().cpu()  # (N, in)
        self.hessian += (x.T @ x).double()  # each batch's product in fp32 (fast); the running sum in fp64
        self.abs_sum += x.abs().sum(0).double()
        self.n += len(x)
        if sum(len(r) for r in self.rows) < self.keep_rows:
            self.rows.append(x)

    def finish(self) -> LinearInputStats:
        self.hessian /= max(self.n, 1)
        self.sample = torch.cat(self.rows)[: self.keep_rows] if self.rows else None
        self.rows = []
        return self

    @property
    def mean_abs(self) -> torch.Tensor:
        return (self.abs_sum / max(self.n, 1)).float()


def linear_targets(model: nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> list[str]:
    """The Linears to compress: every Linear of the blocks (embeddings and the head stay)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] not in skip]


@torch.no_grad()
def collect_input_stats(model: nn.Module, batches: Iterable[torch.Tensor], names: list[str],
                        keep_rows: int = 512) -> dict[str, LinearInputStats]:
    """Run the token batches (B, T) through the model and gather each named Linear's input stats."""
    stats, hooks = {}, []
    for name in names:
        module = model.get_submodule(name)
        stats[name] = LinearInputStats(module.in_features, keep_rows)
        hooks.append(module.register_forward_hook(lambda m, args, out, s=stats[name]: s.add(args[0])))
    was_training = model.training
    model.eval()
    try:
        for tokens in batches:
            model(tokens)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {name: s.finish() for name, s in stats.items()}


def inverse_hessian_factor(weight: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01):
    """What GPTQ and SparseGPT both start from: the weight in float64 with never-active input columns
    zeroed, and the upper Cholesky factor of the damped inverse Hessian (in, in)."""
    w = weight.detach().double().clone()
    h = hessian.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.diag(h).mean() * torch.eye(w.shape[1], dtype=h.dtype)
    return w, torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def block_groups(names: list[str]) -> list[list[str]]:
    """Consecutive names grouped by their block (the prefix up to the first numeric index, e.g.
    `layers.3`); a name outside any block is a group of its own."""
    groups, keys = [], []
    for name in names:
        match = re.match(r"^(.*?\.\d+)\.", name)
        key = match.group(1) if match else name
        if not keys or keys[-1] != key:
            groups.append([])
            keys.append(key)
        groups[-1].append(name)
    return groups


def _blockwise(model: nn.Module, names: list[str]) -> bool:
    """Whether blocks can be calibrated one at a time: a decoder whose targets all sit in its blocks."""
    return (getattr(model, "cfg", None) is not None and model.cfg.arch == "decoder" and hasattr(model, "run_block")
            and not model.cfg.n_unique_layers and all(re.match(r"^layers\.\d+\.", n) for n in names))


@torch.no_grad()
def _compress_blockwise(model, batches, names, compress, keep_rows) -> None:
    """Each block's inputs are kept and pushed through the block once it is compressed, so block i
    sees blocks 0..i-1 compressed while costing one block's forward, not the whole model's."""
    was_training = model.training
    model.eval()
    states = [model.block_inputs(tokens) for tokens in batches]  # [(x (B, T, C), ctx)]
    for group in block_groups(names):
        index = int(group[0].split(".")[1])
        stats, hooks = {}, []
        for name in group:
            module = model.get_submodule(name)
            stats[name] = LinearInputStats(module.in_features, keep_rows)
            hooks.append(module.register_forward_hook(lambda m, args, out, s=stats[name]: s.add(args[0])))
        try:
            for x, ctx in states:
                model.run_block(index, x, ctx)
        finally:
            for hook in hooks:
                hook.remove()
        for name in group:
            compress(name, stats.pop(name).finish())
        states = [(model.run_block(index, x, ctx), ctx) for x, ctx in states]
    model.train(was_training)


def compress_block_by_block(model: nn.Module, batches: Iterable[torch.Tensor], names: list[str],
                            compress: Callable[[str, LinearInputStats], None], keep_rows: int = 512) -> None:
    """For each block in order: gather its Linears' input stats on the calibration batches with the
    blocks before it already compressed, then compress(name, stats) each of them."""
    batches = list(batches)
    if _blockwise(model, names):
        return _compress_blockwise(model, batches, names, compress, keep_rows)
    for group in block_groups(names):
        stats = collect_input_stats(model, batches, group, keep_rows)
        for name in group:
            compress(name, stats.pop(name))
