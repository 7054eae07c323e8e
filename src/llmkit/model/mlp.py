"""Feed-forward layers: a plain MLP, gated GLU variants (SwiGLU, GeGLU; arXiv 2002.05202), and a
top-k routed Mixture-of-Experts of gated MLPs (Mixtral, arXiv 2401.04088)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.model.config import ModelConfig

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swiglu": F.silu,
    "geglu": F.gelu,
    "geglu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "reglu": F.relu,
}
GATED = {"swiglu", "geglu", "geglu_tanh", "reglu"}


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.mlp_bias)

    def forward(self, x):
        return self.down_proj(self.act(self.up_proj(x)))


class GatedMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]
        self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.mlp_bias)
        # for inference, one module returning (gate, up) from one matmul (llmkit.infer.fuse)
        self.gate_up_proj: nn.Module | None = None

    def forward(self, x):
        gate, up = self.gate_up_proj(x) if self.gate_up_proj is not None else (self.gate_proj(x), self.up_proj(x))
        return self.down_proj(self.act(gate) * up)


def build_dense_mlp(cfg: ModelConfig) -> nn.Module:
    return GatedMLP(cfg) if cfg.activation in GATED else MLP(cfg)


class MoE(nn.Module):
    """Each token goes to its top-k experts; their outputs are mixed by renormalised router weights."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.top_k = cfg.n_expert_per_token
        self.router = nn.Linear(cfg.d_model, cfg.n_expert, bias=False)
        self.experts = nn.ModuleList(build_dense_mlp(cfg) for _ in range(cfg.n_expert))

    def forward(self, x):
        tokens = x.reshape(-1, x.shape[-1])  # (N, C)
        probs = F.softmax(self.router(tokens).float(), dim=-1)  # (N, E), fp32 like the reference
        weights, chosen = probs.topk(self.top_k, dim=-1)  # (N, k)
        weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_idx, slot = (chosen == e).nonzero(as_tuple=True)
            if token_idx.numel():
                out.index_add_(0, token_idx, expert(tokens[token_idx]) * weights[token_idx, slot, None])
        return out.view_as(x)


def build_mlp(cfg: ModelConfig) -> nn.Module:
    return MoE(cfg) if cfg.n_expert else build_dense_mlp(cfg)
