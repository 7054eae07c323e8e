"""Summed token cross-entropy with a hand-written backward.

`F.cross_entropy` runs log_softmax, then NLL; its backward builds a zero-filled one-hot gradient
and runs the generic log_softmax backward over the full (tokens, vocab) logits, which measured
~45 ms of a ~1.1 s CPU training step at vocabulary 8192. Here the forward keeps only the per-row
log-sum-exp, and the backward writes `softmax - one_hot` in one pass: the same gradient, half the
passes over the largest activation of the model.
"""

from __future__ import annotations

import torch

from llmkit.train.task import IGNORE_INDEX


class _SummedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
        logits32 = logits.float()  # (N, V); a no-op for fp32 logits
        keep = targets != ignore_index  # (N,)
        safe_targets = targets.masked_fill(~keep, 0)
        lse = torch.logsumexp(logits32, dim=-1)  # (N,)
        target_logit = logits32.gather(1, safe_targets[:, None]).squeeze(1)  # (N,)
        loss = ((lse - target_logit) * keep).sum()
        ctx.save_for_backward(logits, lse, safe_targets, keep)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        logits, lse, safe_targets, keep = ctx.saved_tensors
        grad = torch.sub(logits.float(), lse[:, None]).exp_()  # (N, V) softmax
        rows = torch.arange(len(safe_targets), device=grad.device)
        grad[rows, safe_targets] -= 1.0
        grad.mul_((grad_loss * keep)[:, None])  # ignored rows get no gradient
        return grad.to(logits.dtype), None, None


def summed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """sum over targets != ignore_index of -log softmax(logits)[target]; logits (..., V), targets (...)."""
    return _SummedCrossEntropy.apply(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index)
