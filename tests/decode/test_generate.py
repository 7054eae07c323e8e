import pytest
import torch

from llmkit.decode import SamplingParams, StaticKVCache, generate_ids
from llmkit.infer.llm import LLM
from llmkit.model import build_model, named_config

DECODERS = ["tiny-llama", "tiny-mistral", "tiny-gpt2", "tiny-glm", "tiny-mixtral"]


def _model(name, **overrides):
    torch.manual_seed(0)
    model = build_model(named_config(name).replace(init_std=0.2, **overrides), "cpu").eval()
    return model


def _greedy_without_cache(model, prompt, n, prefix=False):
    tokens = torch.tensor([prompt])
    for _ in range(n):
        prefix_len = torch.tensor([len(prompt)]) if prefix else None
        with torch.no_grad():
            nxt = model(tokens, prefix_len=prefix_len)[0, -1].argmax()
        tokens = torch.cat([tokens, nxt.view(1, 1)], dim=1)
    return tokens[0, len(prompt):].tolist()


@pytest.mark.parametrize("name", DECODERS + ["alibi", "t5_relative"])
def test_cached_decoding_equals_recomputing_everything(name):
    overrides = {"alibi": dict(position="alibi"), "t5_relative": dict(position="t5_relative")}
    model = _model("tiny-llama", **overrides[name]) if name in overrides else _model(name)
    prompt = [5, 17, 99, 3, 42, 7]
    expected = _greedy_without_cache(model, prompt, 12, prefix=name == "tiny-glm")
    assert generate_ids(model, [prompt], 12) == [expected]


def test_cache_logits_match_full_forward():
    model = _model("tiny-llama")
    tokens = torch.randint(0, 4096, (2, 10))
    cache = StaticKVCache.for_model(model, 2, 16)
    with torch.no_grad():
        full = model(tokens)
        first = model(tokens[:, :6], pos=torch.arange(6).expand(2, -1), cache=cache)
        steps = [model(tokens[:, t:t + 1], pos=torch.full((2, 1), t), cache=cache) for t in range(6, 10)]
    assert torch.allclose(torch.cat([first, *steps], dim=1), full, atol=1e-4)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-glm", "tiny-mistral"])
def test_batched_left_padded_generation_equals_one_by_one(name):
    model = _model(name)
    prompts = [[1, 2, 3, 4, 5, 6, 7], [9, 8], [40, 41, 42, 43]]
    batched = generate_ids(model, prompts, 10)
    assert batched == [generate_ids(model, [p], 10)[0] for p in prompts]


def test_generation_stops_at_stop_token():
    model = _model("tiny-llama")
    free = generate_ids(model, [[3, 4, 5]], 10)[0]
    stop = free[4]
    stopped = generate_ids(model, [[3, 4, 5]], 10, stop_ids={stop})[0]
    assert stopped == free[: free.index(stop)]


def test_encoder_decoder_generation_is_greedy_decoding():
    model = _model("tiny-t5")
    src = [[5, 6, 7, 8, 9]]
    out = generate_ids(model, src, 6)[0]
    tokens = torch.tensor([[model.cfg.pad_token_id]])
    with torch.no_grad():
        for _ in range(6):
            nxt = model(torch.tensor(src), tokens)[0, -1].argmax()
            tokens = torch.cat([tokens, nxt.view(1, 1)], dim=1)
    assert out == tokens[0, 1:].tolist()


def test_seeded_sampling_reproducible_and_different_from_greedy():
    model = _model("tiny-llama")
    cfg = SamplingParams(temperature=1.0, seed=3)
    a, b = generate_ids(model, [[1, 2]], 20, cfg), generate_ids(model, [[1, 2]], 20, cfg)
    assert a == b and a != generate_ids(model, [[1, 2]], 20)


def test_llm_api_single_and_batch(tiny_checkpoint):
    llm = LLM.load(tiny_checkpoint)
    single = llm.generate("Return the", max_new_tokens=8, temperature=0.0)
    batch = llm.generate(["Return the", "A list"], max_new_tokens=8)
    assert isinstance(single, str) and batch[0] == single and len(batch) == 2
    sampled = llm.generate("Return the", max_new_tokens=8, temperature=0.8, top_k=20, top_p=0.9, seed=1)
    assert sampled == llm.generate("Return the", max_new_tokens=8, temperature=0.8, top_k=20, top_p=0.9, seed=1)
