"""Speculative decoding: greedy output identical to the target's; the acceptance rule reproduces
the target distribution (statistically, on a tiny vocabulary)."""

import copy

import pytest
import torch

from llmkit.decode import generate_ids
from llmkit.decode.sampling_params import SamplingParams
from llmkit.decode.speculative import accept_or_resample, speculative_generate
from llmkit.model import build_model, named_config


def tiny(seed, layers):
    torch.manual_seed(seed)
    cfg = named_config("tiny-llama").replace(vocab_size=64, n_layer=layers)
    model = build_model(cfg, "cpu").eval()
    with torch.no_grad():  # sharper distributions, so greedy paths are not near-ties
        model.lm_head.weight.mul_(8)
    return model


@pytest.fixture(scope="module")
def models():
    """A target and a draft that agrees with it part of the time (the target with noisy weights)."""
    target = tiny(0, 2)
    draft = copy.deepcopy(target)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn_like(p) * 0.05 * p.std())
    return target, draft


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_output_equals_the_targets_greedy_output(models, k):
    target, draft = models
    prompt = [3, 14, 15, 9, 2]
    expected = generate_ids(target, [prompt], 20)[0]
    got, stats = speculative_generate(target, draft, prompt, 20, k=k)
    assert got == expected
    assert 0 < stats.acceptance_rate < 1  # both the accept and the reject paths ran


def test_a_perfect_draft_is_always_accepted(models):
    target, _ = models
    got, stats = speculative_generate(target, target, [1, 2, 3], 16, k=4)
    assert got == generate_ids(target, [[1, 2, 3]], 16)[0]
    assert stats.acceptance_rate == 1.0


def test_stop_token_ends_generation(models):
    target, draft = models
    full = generate_ids(target, [[5, 6]], 12)[0]
    got, _ = speculative_generate(target, draft, [5, 6], 12, k=3, stop_ids={full[4]})
    assert got == full[: full.index(full[4])]


def test_acceptance_rule_preserves_the_target_distribution():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    q = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    trials = 20000
    first, second = torch.zeros(4), torch.zeros(4)
    for _ in range(trials):
        draft = [int(torch.multinomial(q[i], 1, generator=g)) for i in range(2)]
        accepted, following = accept_or_resample(p, q, draft, g)
        tokens = draft[:accepted] + [following]
        first[tokens[0]] += 1
        if len(tokens) > 1:
            second[tokens[1]] += 1
    assert torch.allclose(first / trials, p[0], atol=0.015)  # ~4 standard errors
    assert torch.allclose(second / second.sum(), p[1], atol=0.02)


def test_seeded_sampling_is_reproducible(models):
    target, draft = models
    cfg = SamplingParams(temperature=1.0, top_k=20, seed=7)
    a = speculative_generate(target, draft, [1, 2, 3], 15, k=3, sampling=cfg)
    b = speculative_generate(target, draft, [1, 2, 3], 15, k=3, sampling=cfg)
    assert a[0] == b[0] and len(a[0]) == 15
