"""Random fixed-length training windows from an in-memory token stream (documents joined by eos);
prepared shards on disk use `llmkit.data.loader.TokenLoader` instead."""

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
