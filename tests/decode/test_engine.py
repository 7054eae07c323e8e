"""The paged engine against transformers' greedy generate, and its sampling contracts."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.errors import LlmkitError
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from tests.parity.hf_models import hf_greedy, hf_tiny


@pytest.fixture(scope="module", params=["llama", "mistral"])
def pair(request, tmp_path_factory):
    """(HF model, the same weights in llmkit); mistral's window of 8 is shorter than the prompts."""
    hf = hf_tiny(request.param)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path)
    return hf, load_checkpoint(path).eval()


PROMPTS = [[5, 9, 13], list(range(10, 40)), [7] * 17, list(range(60, 65))]


def hf_reference(hf, prompts, n):
    return [hf_greedy(hf, torch.tensor([p]), n)[0] for p in prompts]


@pytest.mark.parametrize("config", [
    EngineConfig(block_size=4, num_blocks=64),  # everything fits, prompts in one step
    EngineConfig(block_size=4, num_blocks=64, max_tokens_per_step=8),  # chunked prefill
    EngineConfig(block_size=4, num_blocks=14),  # preemption by recompute
    EngineConfig(block_size=4, num_blocks=14, preemption="swap"),  # preemption by swapping
], ids=["plain", "chunked", "recompute", "swap"])
def test_greedy_matches_transformers(pair, config):
    hf, ours = pair
    expected = hf_reference(hf, PROMPTS, 12)
    engine = Engine(ours, config=config)
    outputs = engine.generate(PROMPTS, SamplingParams(max_tokens=12, ignore_eos=True))
    assert [o[0].token_ids for o in outputs] == expected
    assert engine.scheduler.kv.pool.num_free == engine.scheduler.kv.pool.num_blocks  # all freed
    if config.num_blocks == 14:  # 56 slots for 4 requests needing 15-42 each: someone was preempted
        assert engine.stats["preemptions"] > 0
        assert (engine.stats["swapped_out"] > 0) == (config.preemption == "swap")


def test_prefix_cache_hits_for_a_shared_system_prompt(pair):
    hf, ours = pair
    system = list(range(20, 52))  # 8 full blocks of 4
    prompts = [system + [1, 2], system + [3], system + [4, 5, 6]]
    engine = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64, max_num_seqs=1))
    outputs = engine.generate(prompts, SamplingParams(max_tokens=6, ignore_eos=True))
    assert [o[0].token_ids for o in outputs] == hf_reference(hf, prompts, 6)
    assert engine.prefix_cache_hit_rate > 0.5


def test_seeded_sampling_is_reproducible_and_n_gives_distinct_samples(pair):
    _, ours = pair
    params = SamplingParams(temperature=1.5, top_k=50, max_tokens=10, seed=3, n=3)
    first = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64)).generate([[1, 2, 3]], params)[0]
    again = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64)).generate([[1, 2, 3]], params)[0]
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert len({tuple(c.token_ids) for c in first}) > 1


def test_stop_token_ends_the_completion_without_it(pair):
    hf, ours = pair
    expected = hf_reference(hf, [PROMPTS[1]], 12)[0]
    stop = expected[5]
    out = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64)).generate(
        [PROMPTS[1]], SamplingParams(max_tokens=12, stop_token_ids=[stop]))[0][0]
    assert out.token_ids == expected[: expected.index(stop)] and out.finish_reason == "stop"


def test_logprobs_are_the_model_distribution(pair):
    _, ours = pair
    out = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64)).generate(
        [[3, 4, 5]], SamplingParams(max_tokens=1, logprobs=2))[0][0]
    with torch.no_grad():
        logits = ours(torch.tensor([[3, 4, 5]]))[0, -1].log_softmax(-1)
    entry = out.logprobs[0]
    assert entry["logprob"] == pytest.approx(float(logits.max()), abs=1e-5)
    assert list(entry["top"]) == logits.topk(2).indices.tolist()


def test_abort_frees_the_blocks(pair):
    _, ours = pair
    engine = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64))
    rid = engine.add_request(list(range(30)), SamplingParams(max_tokens=50))
    engine.step()
    assert engine.scheduler.kv.pool.num_free < 64
    engine.abort(rid)
    assert engine.scheduler.kv.pool.num_free == 64 and not engine.has_work()


def test_bad_requests_get_clear_errors(pair):
    _, ours = pair
    engine = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64))
    with pytest.raises(LlmkitError, match="prompt has 200 tokens"):
        engine.add_request([1] * 200)
    with pytest.raises(LlmkitError, match="empty"):
        engine.add_request([])
    with pytest.raises(LlmkitError, match="text prompt needs a tokenizer"):
        engine.add_request("hello")
    with pytest.raises(LlmkitError, match="top_p must be in"):
        SamplingParams(top_p=1.5)


def test_bfloat16_kv_cache_stays_close_to_fp32(pair):
    _, ours = pair
    fp32 = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64))
    bf16 = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64, kv_cache_dtype="bfloat16"))
    assert bf16.cache.k.dtype == torch.bfloat16
    assert bf16.cache.k.element_size() * 2 == fp32.cache.k.element_size()
    a = fp32.generate(PROMPTS, SamplingParams(max_tokens=6, logprobs=0))
    b = bf16.generate(PROMPTS, SamplingParams(max_tokens=6, logprobs=0))
    first_a = [o[0].logprobs[0]["logprob"] for o in a]
    first_b = [o[0].logprobs[0]["logprob"] for o in b]
    assert max(abs(x - y) for x, y in zip(first_a, first_b)) < 0.05


def test_stop_string_cuts_the_text(tiny_checkpoint):
    from llmkit.infer.llm import LLM

    llm = LLM.load(tiny_checkpoint)
    engine = Engine(llm.model, llm.tokenizer, EngineConfig(block_size=4, num_blocks=64))
    free = engine.generate(["Return the"], SamplingParams(max_tokens=16, ignore_eos=True))[0][0]
    assert len(free.text) > 6
    stop = free.text[4:6]
    cut = engine.generate(["Return the"], SamplingParams(max_tokens=16, ignore_eos=True, stop=[stop]))[0][0]
    assert cut.finish_reason == "stop" and cut.text == free.text[: free.text.find(stop)]


@pytest.mark.slow
def test_compiled_single_stream_decode_matches_eager(tiny_checkpoint):
    from llmkit.infer.llm import LLM

    eager = LLM.load(tiny_checkpoint)
    compiled = LLM.load(tiny_checkpoint, compile=True)
    assert compiled.generate("Return the", max_new_tokens=6) == eager.generate("Return the", max_new_tokens=6)
