"""Preference-optimisation losses on sequence log-probabilities, one function per method.

Inputs are per-pair tensors (B,): the policy's summed log-probability of the chosen and rejected
responses (`policy_chosen`, `policy_rejected`), the frozen reference model's (`ref_*`) where the
method needs one, and response lengths in tokens where it normalises by length.

    DPO    Rafailov et al., arXiv 2305.18290   -log sigmoid(beta * (chosen margin - rejected margin))
    IPO    Azar et al., arXiv 2310.12036       (h - 1 / (2 beta))^2, h = chosen margin - rejected margin
    SimPO  Meng et al., arXiv 2405.14734       -log sigmoid(beta * (avg logp chosen - avg logp rejected) - gamma)
    ORPO   Hong et al., arXiv 2403.07691       NLL(chosen) - lambda * log sigmoid(log odds chosen - log odds rejected)

where margin = policy log-prob - reference log-prob, avg logp = summed log-prob / length, and
log odds(y) = avg logp - log(1 - exp(avg logp)).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from llmkit.train.task import IGNORE_INDEX


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position (B, T); logits (B, T, V); ignored targets give an arbitrary value."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return logp.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)  # (B, T)


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability (B,) of the target tokens != IGNORE_INDEX, and their count (B,).
    logits (B, T, V) predict targets (B, T)."""
    keep = targets != IGNORE_INDEX
    return (token_logprobs(logits, targets) * keep).sum(-1), keep.sum(-1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1,
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and the implicit reward margin (B,); label_smoothing > 0 is conservative DPO."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    loss = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    return loss.mean(), beta * h.detach()


def ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1):
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return ((h - 1 / (2 * beta)) ** 2).mean(), beta * h.detach()


def simpo_loss(policy_chosen, policy_rejected, chosen_len, rejected_len, beta: float = 2.0, gamma: float = 0.5):
    margin = beta * (policy_chosen / chosen_len - policy_rejected / rejected_len)
    return -F.logsigmoid(margin - gamma).mean(), margin.detach()


def _log_odds(avg_logp: torch.Tensor) -> torch.Tensor:
    return avg_logp - torch.log1p(-torch.exp(avg_logp).clamp(max=1 - 1e-6))


def orpo_loss(policy_chosen, policy_rejected, chosen_len, rejected_len, lam: float = 0.1):
    """NLL of the chosen response (per token) plus lambda times the odds-ratio term."""
    avg_chosen, avg_rejected = policy_chosen / chosen_len, policy_rejected / rejected_len
    ratio = _log_odds(avg_chosen) - _log_odds(avg_rejected)
    return (-avg_chosen - lam * F.logsigmoid(ratio)).mean(), ratio.detach()


PREFERENCE_LOSSES = {"dpo": dpo_loss, "ipo": ipo_loss, "simpo": simpo_loss, "orpo": orpo_loss}
NEEDS_REFERENCE = {"dpo", "ipo"}
