"""A few AdamW steps of next-token loss on the trainable parameters only (for transform tests)."""

import torch

from llmkit.train.objectives import CausalLM


def train_trainable(model, tokens: torch.Tensor, steps: int, lr: float) -> list[float]:
    """Losses of `steps` updates of the parameters with requires_grad on tokens (B, T+1)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    task, losses = CausalLM(), []
    for _ in range(steps):
        total, count = task.loss(model, task.make_batch(tokens[:, :-1], tokens[:, 1:]))
        (total / count).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append((total / count).item())
    return losses
