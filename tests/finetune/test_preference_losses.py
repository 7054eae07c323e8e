"""Each preference loss against a direct float64 computation of its formula on fixed log-probabilities."""

import math

import pytest
import torch

from llmkit.finetune.preference_losses import (
    dpo_loss,
    ipo_loss,
    orpo_loss,
    sequence_logprobs,
    simpo_loss,
)
from llmkit.train.task import IGNORE_INDEX

PC = [-12.0, -30.5, -7.25]  # policy chosen / rejected, reference chosen / rejected (summed log-probs)
PR = [-15.0, -29.0, -9.5]
RC = [-13.0, -31.0, -7.0]
RR = [-14.0, -28.0, -9.0]
LC = [6, 12, 3]
LR = [8, 10, 4]
t = lambda xs: torch.tensor(xs, dtype=torch.float32)
sigmoid = lambda x: 1 / (1 + math.exp(-x))


def test_dpo():
    beta = 0.1
    expected = sum(-math.log(sigmoid(beta * ((pc - rc) - (pr - rr)))) for pc, pr, rc, rr in zip(PC, PR, RC, RR)) / 3
    loss, margin = dpo_loss(t(PC), t(PR), t(RC), t(RR), beta)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert margin.tolist() == pytest.approx([beta * ((pc - rc) - (pr - rr)) for pc, pr, rc, rr in zip(PC, PR, RC, RR)])


def test_conservative_dpo():
    beta, eps = 0.5, 0.2
    h = [(pc - rc) - (pr - rr) for pc, pr, rc, rr in zip(PC, PR, RC, RR)]
    expected = sum(-(1 - eps) * math.log(sigmoid(beta * x)) - eps * math.log(sigmoid(-beta * x)) for x in h) / 3
    assert dpo_loss(t(PC), t(PR), t(RC), t(RR), beta, eps)[0].item() == pytest.approx(expected, rel=1e-6)


def test_ipo():
    beta = 0.25
    expected = sum(((pc - rc) - (pr - rr) - 1 / (2 * beta)) ** 2 for pc, pr, rc, rr in zip(PC, PR, RC, RR)) / 3
    assert ipo_loss(t(PC), t(PR), t(RC), t(RR), beta)[0].item() == pytest.approx(expected, rel=1e-6)


def test_simpo():
    beta, gamma = 2.0, 0.5
    expected = sum(-math.log(sigmoid(beta * (pc / lc - pr / lr) - gamma)) for pc, pr, lc, lr in zip(PC, PR, LC, LR)) / 3
    assert simpo_loss(t(PC), t(PR), t(LC), t(LR), beta, gamma)[0].item() == pytest.approx(expected, rel=1e-6)


def test_orpo():
    lam = 0.3
    odds = lambda avg: avg - math.log(1 - math.exp(avg))
    expected = sum(-pc / lc - lam * math.log(sigmoid(odds(pc / lc) - odds(pr / lr)))
                   for pc, pr, lc, lr in zip(PC, PR, LC, LR)) / 3
    assert orpo_loss(t(PC), t(PR), t(LC), t(LR), lam)[0].item() == pytest.approx(expected, rel=1e-5)


def test_sequence_logprobs_sum_only_kept_targets():
    logits = torch.randn(2, 4, 7, dtype=torch.float64)
    targets = torch.tensor([[1, 2, IGNORE_INDEX, 3], [IGNORE_INDEX, IGNORE_INDEX, 6, 0]])
    total, count = sequence_logprobs(logits, targets)
    logp = torch.log_softmax(logits, -1)
    expected0 = logp[0, 0, 1] + logp[0, 1, 2] + logp[0, 3, 3]
    expected1 = logp[1, 2, 6] + logp[1, 3, 0]
    assert torch.allclose(total.double(), torch.stack([expected0, expected1]), atol=1e-5)
    assert count.tolist() == [3, 2]
