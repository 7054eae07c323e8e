"""Greedy, top-k, top-p and temperature through the one sampler (llmkit.decode.sampler)."""

import pytest
import torch

from llmkit.decode.sampler import RowState, filter_logits, sample
from llmkit.decode.sampling_params import SamplingParams
from llmkit.errors import LlmkitError

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])


def sample_rows(logits: torch.Tensor, params: SamplingParams, generator=None) -> torch.Tensor:
    """One token per row of logits (B, V), every row drawing from the same generator."""
    rows = [RowState(params, generator, [], []) for _ in range(logits.shape[0])]
    return torch.tensor([s.token for s in sample(logits, rows)])


def _draws(params, n=2000):
    logits = PROBS.log().expand(n, -1)
    return sample_rows(logits, params, torch.Generator().manual_seed(0))


def test_greedy_is_argmax():
    logits = torch.randn(5, 50)
    assert torch.equal(sample_rows(logits, SamplingParams(temperature=0)), logits.argmax(-1))


def test_top_k_never_leaves_the_top_k():
    assert set(_draws(SamplingParams(temperature=1.0, top_k=2)).tolist()) == {0, 1}


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert set(_draws(SamplingParams(temperature=1.0, top_p=0.7)).tolist()) == {0, 1}
    assert set(_draws(SamplingParams(temperature=1.0, top_p=0.85)).tolist()) == {0, 1, 2}


def test_temperature_one_samples_the_distribution():
    freq = torch.bincount(_draws(SamplingParams(temperature=1.0), 20000), minlength=4).float() / 20000
    assert torch.allclose(freq, PROBS[0], atol=0.02)


def test_top_p_filter_on_ties_keeps_at_least_one():
    kept = filter_logits(torch.zeros(1, 4), None, 0.01)
    assert torch.isfinite(kept).sum() >= 1


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(3, 100)
    params = SamplingParams(temperature=0.9)
    a = sample_rows(logits, params, torch.Generator().manual_seed(5))
    b = sample_rows(logits, params, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=0), dict(top_p=1.5), dict(top_p=0)])
def test_invalid_parameters_are_rejected(bad):
    with pytest.raises(LlmkitError):
        SamplingParams(**bad)
