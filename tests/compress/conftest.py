import math

import torch


def windows(data_dir, split: str, seq_len: int = 64, count: int = 16) -> torch.Tensor:
    """`count` consecutive (seq_len + 1)-token windows of a split, (count, seq_len + 1)."""
    from llmkit.data.loader import TokenDataset

    data = TokenDataset(data_dir, split)
    n = min(count, (len(data) - 1) // (seq_len + 1))
    return torch.stack([torch.from_numpy(data.tokens(i * (seq_len + 1), seq_len + 1)) for i in range(n)])


@torch.no_grad()
def perplexity(model, tokens: torch.Tensor) -> float:
    logits = model(tokens[:, :-1])
    return math.exp(torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten()).item())
