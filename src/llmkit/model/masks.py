"""Attention masks of the three architecture families, built from logical positions.

`allowed[b, i, j]` is True when query i may attend to key j:
- causal decoder:   j <= i
- prefix decoder:   j < p  or  j <= i      (bidirectional inside the prefix of length p; GLM, U-PaLM)
- bidirectional:    always (encoders, cross-attention)
- sliding window w: additionally j > i - w (Mistral: the query plus w - 1 keys before it)
- packed documents: additionally segment[i] == segment[j] (each document sees only itself)
Keys at negative positions are left padding and never attended by real queries.
"""

from __future__ import annotations

import torch


def attention_allowed(
    q_pos: torch.Tensor,
    k_pos: torch.Tensor,
    causal: bool = True,
    prefix_len: torch.Tensor | None = None,
    window: int | None = None,
    segments: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean mask (B, 1, Tq, Tk) from positions q_pos (B, Tq) and k_pos (B, Tk); segments (B, T)
    (queries and keys alike, no cache) keep packed documents apart."""
    q, k = q_pos[:, :, None], k_pos[:, None, :]  # (B, Tq, 1), (B, 1, Tk)
    allowed = torch.ones(q.shape[0], q.shape[1], k.shape[2], dtype=torch.bool, device=q.device)
    if causal:
        allowed = k <= q
        if prefix_len is not None:
            allowed = allowed | (k < prefix_len[:, None, None])
    if window is not None:
        allowed = allowed & (k > q - window)
    if segments is not None:
        allowed = allowed & (segments[:, :, None] == segments[:, None, :])
    # Padding queries (q < 0) keep the padding keys so their softmax rows stay finite.
    allowed = allowed & ((k >= 0) | (q < 0))
    return allowed[:, None]


def merge_bias(allowed: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask alone, or an additive float mask carrying a position bias."""
    if bias is None:
        return allowed
    return bias.to(dtype).masked_fill(~allowed, float("-inf"))
