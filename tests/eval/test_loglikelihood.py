"""Batched, padded, windowed log-likelihoods against a float64 recomputation, one sequence at a time."""

import random

import pytest
import torch

from llmkit.eval.loglikelihood import (
    continuation_loglikelihoods,
    rolling_loglikelihoods,
    rolling_windows,
)
from llmkit.model import build_model, named_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(named_config("tiny-llama").replace(vocab_size=97, max_seq_len=32), "cpu").eval()


def reference_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log p(ids[t] | ids[:t]) for t >= 1, in float64, the whole sequence in one unpadded pass."""
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]]))[0].double()  # (T-1, V)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]


def test_continuations_match_a_per_request_float64_computation(model):
    rng = random.Random(0)
    requests = [([rng.randrange(97) for _ in range(rng.randint(1, 20))], [rng.randrange(97) for _ in range(rng.randint(1, 6))])
                for _ in range(11)]
    got = continuation_loglikelihoods(model, requests, batch_size=4)
    for (context, continuation), (logprob, greedy) in zip(requests, got):
        ids = context + continuation
        expected = reference_logprobs(model, ids)[len(context) - 1:]
        assert logprob == pytest.approx(expected.sum().item(), abs=1e-4)
        with torch.no_grad():
            argmax = model(torch.tensor([ids[:-1]]))[0].argmax(-1)[len(context) - 1:]
        assert greedy == bool((argmax == torch.tensor(continuation)).all())


def test_a_greedy_continuation_is_reported_as_greedy(model):
    context = [5, 6, 7]
    with torch.no_grad():
        nxt = model(torch.tensor([context]))[0, -1].argmax().item()
    assert continuation_loglikelihoods(model, [(context, [nxt])])[0][1] is True


def test_long_contexts_are_cut_from_the_left(model):
    context, continuation = list(range(1, 60)), [3, 4]
    (logprob, _), = continuation_loglikelihoods(model, [(context, continuation)])
    kept = (context + continuation)[-33:]  # the model's 32 positions + the last target
    assert logprob == pytest.approx(reference_logprobs(model, kept)[-2:].sum().item(), abs=1e-4)


@pytest.mark.parametrize("length,max_len,stride", [(5, 8, 8), (40, 8, 8), (40, 8, 3), (17, 8, 1), (9, 8, 8)])
def test_rolling_windows_score_every_token_once_with_bounded_context(length, max_len, stride):
    tokens = list(range(100, 100 + length))
    windows = rolling_windows(tokens, max_len, stride, prefix_id=1)
    targets = [t for window, start in windows for t in window[start:]]
    assert targets == tokens  # each token a target exactly once, in order
    assert all(len(window) <= max_len + 1 for window, _ in windows)
    for window, start in windows[1:]:  # later windows: full, scoring at most `stride` tokens at their end
        assert len(window) == max_len + 1 and len(window) - start <= stride


def test_rolling_loglikelihood_is_the_sum_over_tokens_within_each_window(model):
    rng = random.Random(1)
    text = [rng.randrange(2, 97) for _ in range(70)]
    (short, n_short), = rolling_loglikelihoods(model, [text[:20]], prefix_id=1)
    assert n_short == 20
    assert short == pytest.approx(reference_logprobs(model, [1] + text[:20]).sum().item(), abs=1e-4)
    (total, n), = rolling_loglikelihoods(model, [text], prefix_id=1, stride=8)
    expected = sum(reference_logprobs(model, window)[start - 1:].sum().item()
                   for window, start in rolling_windows(text, 32, 8, 1))
    assert n == 70 and total == pytest.approx(expected, abs=1e-3)


def test_choices_after_the_same_context_compute_it_once(monkeypatch):
    """Four one-token choices and one two-token choice after one context: the context's tokens run
    through the model once (the prefix cache, one-token blocks), each request adds only its own."""
    from llmkit.decode.model_runner import ModelRunner

    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(vocab_size=97, max_seq_len=64), "cpu").eval()
    computed = []
    execute = ModelRunner.execute
    monkeypatch.setattr(ModelRunner, "execute", lambda self, work: computed.append(sum(n for _, n, _ in work))
                        or execute(self, work))
    context = [(7 * i) % 90 + 4 for i in range(40)]
    requests = [(context, [c]) for c in (42, 7, 9, 11)] + [(context, [42, 7])]
    got = continuation_loglikelihoods(model, requests, batch_size=16)
    # without sharing 5 x 40 context tokens + 1; shared: the two-token choice's 41 inputs, then the
    # last context token alone for each one-token choice (its logits score the choice)
    assert sum(computed) == 41 + 4 * 1
    expected = continuation_loglikelihoods(model, requests, batch_size=1)
    assert [g[0] for g in got] == pytest.approx([e[0] for e in expected], abs=1e-5)
    for (context, continuation), (logprob, _) in zip(requests, got, strict=True):
        ids = context + continuation
        assert logprob == pytest.approx(reference_logprobs(model, ids)[len(context) - 1:].sum().item(), abs=1e-4)


def test_an_encoder_decoder_gets_a_clear_error():
    from llmkit.errors import LlmkitError

    t5 = build_model(named_config("tiny-t5"), "cpu")
    with pytest.raises(LlmkitError, match="encoder-decoder: use generate tasks"):
        continuation_loglikelihoods(t5, [([1, 2], [3])])
