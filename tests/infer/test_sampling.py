import pytest
import torch

from llmkit.errors import LlmkitError
from llmkit.infer.sampling import SamplingConfig, filter_logits, sample_next

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])


def _draws(cfg, n=2000):
    logits = PROBS.log().expand(n, -1)
    return sample_next(logits, cfg, torch.Generator().manual_seed(0))


def test_greedy_is_argmax():
    logits = torch.randn(5, 50)
    assert torch.equal(sample_next(logits, SamplingConfig(temperature=0)), logits.argmax(-1))


def test_top_k_never_leaves_the_top_k():
    assert set(_draws(SamplingConfig(temperature=1.0, top_k=2)).tolist()) == {0, 1}


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert set(_draws(SamplingConfig(temperature=1.0, top_p=0.7)).tolist()) == {0, 1}
    assert set(_draws(SamplingConfig(temperature=1.0, top_p=0.85)).tolist()) == {0, 1, 2}


def test_temperature_one_samples_the_distribution():
    freq = torch.bincount(_draws(SamplingConfig(temperature=1.0), 20000), minlength=4).float() / 20000
    assert torch.allclose(freq, PROBS[0], atol=0.02)


def test_top_p_filter_on_ties_keeps_at_least_one():
    kept = filter_logits(torch.zeros(1, 4), None, 0.01)
    assert torch.isfinite(kept).sum() >= 1


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(3, 100)
    cfg = SamplingConfig(temperature=0.9)
    a = sample_next(logits, cfg, torch.Generator().manual_seed(5))
    b = sample_next(logits, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=0), dict(top_p=1.5), dict(top_p=0)])
def test_invalid_parameters_are_rejected(bad):
    with pytest.raises(LlmkitError):
        SamplingConfig(**bad)
