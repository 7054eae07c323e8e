"""Cross-layer weight sharing (ALBERT, arXiv 1909.11942) applied to a trained model: every `group`
consecutive blocks become one shared block initialised with their mean weights (the model config's
`n_unique_layers`), cutting block parameters by `group`x; a short continued pre-training then heals
the loss ("share, then heal"). The shared model saves as a checkpoint like any other."""

from __future__ import annotations

import torch
from torch import nn

from llmkit.errors import LlmkitError
from llmkit.model import build_model


@torch.no_grad()
def share_layers(model: nn.Module, group: int) -> nn.Module:
    """A new model whose consecutive groups of `group` blocks share one (mean) block."""
    cfg = model.cfg
    if cfg.n_unique_layers or cfg.arch != "decoder":
        raise LlmkitError("weight sharing applies to decoder models without shared layers yet")
    if group < 2 or cfg.n_layer % group:
        raise LlmkitError(f"--groups {group} must be >= 2 and divide the {cfg.n_layer} layers")
    device = next(model.parameters()).device
    shared = build_model(cfg.replace(n_unique_layers=cfg.n_layer // group), device=device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("layers.")}
    for unique in range(cfg.n_layer // group):
        members = [model.layers[unique * group + i].state_dict() for i in range(group)]
        for key in members[0]:
            state[f"layers.{unique}.{key}"] = torch.stack([m[key] for m in members]).mean(0)
    shared.load_state_dict(state)
    return shared
