"""The Engine's prompt log-probabilities (vLLM's prompt_logprobs): equal to a float64 forward pass
of transformers over the prompt, under every cache layout; prompt-only requests; prefix reuse."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from tests.parity.hf_models import hf_tiny


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = hf_tiny("llama")
    path = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(path)
    return hf, load_checkpoint(path).eval()


def reference(hf, ids: list[int]) -> torch.Tensor:
    """log p(ids[t] | ids[:t]) for t >= 1, and each token's rank, in float64: (T-1,), (T-1,)."""
    with torch.no_grad():
        logp = hf.double()(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)  # (T-1, V)
    hf.float()
    picked = logp.gather(-1, torch.tensor(ids[1:])[:, None])
    return picked[:, 0], (logp > picked).sum(-1) + 1


PROMPTS = [list(range(3, 40)), [5, 9, 13, 2, 2, 7], [7] * 20 + list(range(50, 61))]


@pytest.mark.parametrize("config", [
    EngineConfig(block_size=4, num_blocks=64),
    EngineConfig(block_size=4, num_blocks=64, max_tokens_per_step=5),  # chunked: one-token chunks too
    EngineConfig(block_size=4, num_blocks=24),  # preemption recomputes (and rescores) prompts
], ids=["plain", "chunked", "preempted"])
def test_prompt_logprobs_equal_a_float64_forward(pair, config):
    hf, ours = pair
    engine = Engine(ours, config=config)
    outputs = engine.generate(PROMPTS, SamplingParams(max_tokens=4, ignore_eos=True, prompt_logprobs=3))
    for prompt, (completion,) in zip(PROMPTS, outputs, strict=True):
        scores = completion.prompt_logprobs
        assert len(scores) == len(prompt) and scores[0] is None and len(completion.token_ids) == 4
        expected, ranks = reference(hf, prompt)
        got = torch.tensor([s["logprob"] for s in scores[1:]], dtype=torch.float64)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
        assert [s["token"] for s in scores[1:]] == prompt[1:]
        assert [s["rank"] for s in scores[1:]] == ranks.tolist()
        assert all(len(s["top"]) == 3 and max(s["top"].values()) >= s["logprob"] - 1e-6 for s in scores[1:])


def test_prompt_only_request_scores_a_prompt_one_past_the_context(pair):
    hf, ours = pair
    context = ours.cfg.max_seq_len
    prompt = [(i * 7) % 90 + 3 for i in range(context + 1)]  # the last token is only a target
    engine = Engine(ours, config=EngineConfig(block_size=8, num_blocks=4 * context // 8))
    (completion,), = engine.generate([prompt], SamplingParams(max_tokens=0, prompt_logprobs=0))
    assert completion.token_ids == [] and completion.finish_reason == "length"
    expected, _ = reference(hf, prompt[:-1])
    got = [s["logprob"] for s in completion.prompt_logprobs[1:-1]]
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), expected, atol=1e-4, rtol=0)
    assert completion.prompt_logprobs[-1]["token"] == prompt[-1]


def test_scoring_from_an_index_reuses_the_shared_prefix_of_requests_sent_together(pair):
    """Four continuations of one context, as a multiple-choice question asks: the context's full
    blocks are computed once (the others wait a step, then reuse them), and every score is exact."""
    hf, ours = pair
    context = list(range(3, 43))  # 40 tokens: 10 blocks of 4
    choices = [[50], [51, 52], [53], [54, 55, 56]]
    engine = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64))
    ids = [engine.add_request(context + c, SamplingParams(max_tokens=0, prompt_logprobs=0),
                              prompt_logprobs_from=len(context)) for c in choices]
    final = {}
    while engine.has_work():
        final.update({out.request_id: out for out in engine.step() if out.finished})
    assert engine.prefix_cache_hit_rate > 0.5
    for rid, choice in zip(ids, choices, strict=True):
        scores = final[rid].prompt_logprobs
        assert all(s is None for s in scores[: len(context)])
        expected, _ = reference(hf, context + choice)
        got = torch.tensor([s["logprob"] for s in scores[len(context):]], dtype=torch.float64)
        torch.testing.assert_close(got, expected[len(context) - 1:], atol=1e-4, rtol=0)


def test_requests_without_prompt_logprobs_report_none(pair):
    _, ours = pair
    (completion,), = Engine(ours).generate([[5, 6, 7]], SamplingParams(max_tokens=2))
    assert completion.prompt_logprobs is None
