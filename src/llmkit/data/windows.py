"""Fixed-length training windows cut from one stream of token ids (documents joined by eos)."""

from __future__ import annotations

from typing import Iterator

import torch


def random_windows(tokens: torch.Tensor, seq_len: int, batch_size: int, seed: int = 0
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets) batches of shape (B, T), targets shifted by one; seeded."""
    if tokens.numel() <= seq_len + 1:
        raise ValueError(f"{tokens.numel()} tokens cannot fill one window of {seq_len} + 1")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(seq_len + 1)
    while True:
        starts = torch.randint(0, tokens.numel() - seq_len - 1, (batch_size,), generator=generator)
        chunk = tokens[starts[:, None] + offsets]  # (B, T + 1)
        yield chunk[:, :-1], chunk[:, 1:]


def sequential_windows(tokens: torch.Tensor, seq_len: int, batch_size: int
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows covering the stream once (for validation loss)."""
    n_windows = (tokens.numel() - 1) // seq_len
    windows = tokens[: n_windows * seq_len + 1]
    for first in range(0, n_windows, batch_size):
        idx = torch.arange(first, min(first + batch_size, n_windows))[:, None] * seq_len + torch.arange(seq_len + 1)
        chunk = windows[idx]  # (B, T + 1)
        yield chunk[:, :-1], chunk[:, 1:]
