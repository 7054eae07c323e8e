"""Structured pruning: remove whole attention heads, MLP channels or layers, producing a genuinely
smaller model with a valid config (it saves as a plain HF-layout checkpoint). Importance comes
from one forward pass of calibration text; the same number of units goes from every layer, so
the result stays a uniform config.

    heads     KV-head groups (a KV head and the query heads that share it), scored by the norm of
              their contribution to the attention output, ||X_group W_o[:, group]^T||
    channels  MLP intermediate channels, scored by ||X_j|| * ||W_down[:, j]|| (Wanda's score per column)
    layers    whole blocks with the least Block Influence, 1 - cos(block input, block output)
              (Men et al., ShortGPT, arXiv 2403.03853)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from llmkit.compress.calibration import collect_input_stats
from llmkit.errors import LlmkitError

KINDS = ("heads", "channels", "layers")


def _keep_linear(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    w = linear.weight.detach()
    w = w if rows is None else w[rows]
    w = w if cols is None else w[:, cols]
    out = nn.Linear(w.shape[1], w.shape[0], bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    out.weight.data.copy_(w)
    if linear.bias is not None:
        out.bias.data.copy_(linear.bias.detach() if rows is None else linear.bias.detach()[rows])
    return out


@torch.no_grad()
def prune_heads(model: nn.Module, keep: float, calibration: Iterable[torch.Tensor]) -> None:
    cfg = model.cfg
    group, d = cfg.n_head // cfg.n_kv_head, cfg.head_dim
    n_keep = max(1, round(cfg.n_kv_head * keep))
    names = [f"layers.{i}.attn.o_proj" for i in range(len(model.layers))]
    stats = collect_input_stats(model, calibration, names, keep_rows=1024)
    for i, layer in enumerate(model.layers):
        attn, x = layer.attn, stats[names[i]].sample  # (N, H * D) inputs of o_proj
        w_o = attn.o_proj.weight.detach().float()
        scores = torch.stack([(x[:, g * group * d:(g + 1) * group * d] @ w_o[:, g * group * d:(g + 1) * group * d].T).norm()
                              for g in range(cfg.n_kv_head)])
        kept = scores.topk(n_keep).indices.sort().values
        q_rows = torch.cat([torch.arange(g * group * d, (g + 1) * group * d) for g in kept.tolist()])
        kv_rows = torch.cat([torch.arange(g * d, (g + 1) * d) for g in kept.tolist()])
        attn.q_proj, attn.o_proj = _keep_linear(attn.q_proj, rows=q_rows), _keep_linear(attn.o_proj, cols=q_rows)
        attn.k_proj, attn.v_proj = _keep_linear(attn.k_proj, rows=kv_rows), _keep_linear(attn.v_proj, rows=kv_rows)
        attn.n_head, attn.n_kv_head = n_keep * group, n_keep
    model.cfg = cfg.replace(n_head=n_keep * group, n_kv_head=n_keep, head_dim=d)


@torch.no_grad()
def prune_channels(model: nn.Module, keep: float, calibration: Iterable[torch.Tensor]) -> None:
    cfg = model.cfg
    n_keep = max(8, round(cfg.d_ff * keep / 8) * 8)  # a multiple of 8 keeps matmuls aligned
    names = [f"layers.{i}.mlp.down_proj" for i in range(len(model.layers))]
    stats = collect_input_stats(model, calibration, names, keep_rows=0)
    for i, layer in enumerate(model.layers):
        mlp = layer.mlp
        if not hasattr(mlp, "down_proj"):
            raise LlmkitError("channel pruning supports dense MLPs (not mixture-of-experts)")
        score = torch.diag(stats[names[i]].hessian).sqrt().float() * mlp.down_proj.weight.detach().float().norm(dim=0)
        kept = score.topk(n_keep).indices.sort().values
        for name in ("gate_proj", "up_proj"):
            if hasattr(mlp, name):
                setattr(mlp, name, _keep_linear(getattr(mlp, name), rows=kept))
        mlp.down_proj = _keep_linear(mlp.down_proj, cols=kept)
    model.cfg = cfg.replace(d_ff=n_keep)


@torch.no_grad()
def block_influence(model: nn.Module, calibration: Iterable[torch.Tensor]) -> torch.Tensor:
    """1 - mean cosine(input, output) of each block over the calibration tokens (n_layer,)."""
    sums = torch.zeros(len(model.layers), dtype=torch.float64)
    counts = torch.zeros(len(model.layers), dtype=torch.float64)

    def record(index: int):
        def hook(module, args, out) -> None:
            x, y = args[0].flatten(0, -2).double(), out.flatten(0, -2).double()  # (N, C)
            sums[index] += torch.cosine_similarity(x, y, dim=-1).sum()
            counts[index] += len(x)
        return hook

    hooks = [layer.register_forward_hook(record(i)) for i, layer in enumerate(model.layers)]
    try:
        for tokens in calibration:
            model(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    return (1 - sums / counts.clamp(min=1)).float()


def prune_layers(model: nn.Module, keep: float, calibration: Iterable[torch.Tensor]) -> list[int]:
    """Remove the blocks with the least influence; returns the removed layer indices."""
    cfg = model.cfg
    if cfg.n_unique_layers:
        raise LlmkitError("layer pruning of a model with shared layers is not supported")
    n_keep = max(1, round(cfg.n_layer * keep))
    influence = block_influence(model.eval(), calibration)
    kept = sorted(influence.topk(n_keep).indices.tolist())
    model.layers = nn.ModuleList(model.layers[i] for i in kept)
    model.layer_order = list(range(n_keep))
    model.cfg = cfg.replace(n_layer=n_keep)
    return [i for i in range(cfg.n_layer) if i not in kept]


def prune_structure(model: nn.Module, kind: str, keep: float, calibration) -> dict:
    """Apply one kind of structured pruning; returns parameter counts before and after."""
    if kind not in KINDS:
        raise LlmkitError(f"unknown structure {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0 < keep <= 1:
        raise LlmkitError(f"the kept share must be in (0, 1], got {keep}")
    if model.cfg.arch != "decoder":
        raise LlmkitError("structured pruning supports decoder-only models")
    before = sum(p.numel() for p in model.parameters())
    {"heads": prune_heads, "channels": prune_channels, "layers": prune_layers}[kind](model, keep, list(calibration))
    return {"parameters_before": before, "parameters_after": sum(p.numel() for p in model.parameters())}
