"""OpenAI-protocol behaviours clients rely on (the cases vLLM's and SGLang's server suites check),
against a real server through the official `openai` client and raw HTTP for what it refuses."""

import httpx
import openai
import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state

KEY = "test-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    state = build_state(tiny_checkpoint, model_name="tiny", api_key=KEY, max_queue=64,
                        engine_config=EngineConfig(block_size=4, num_blocks=512))
    with BackgroundServer(state) as url:
        yield url, state


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server[0] + path, json=body, headers=HEADERS, timeout=60)


def test_echo_returns_the_prompt_text_and_its_log_probabilities(server, client, tiny_checkpoint):
    state = server[1]
    prompt = "Return the list of"
    ids = state.tokenizer.encode(prompt)
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=3, temperature=0, echo=True, logprobs=1)
    choice = out.choices[0]
    plain = client.completions.create(model="tiny", prompt=prompt, max_tokens=3, temperature=0)
    choice_plain = plain.choices[0]
    assert choice.text == state.tokenizer.decode(ids) + choice_plain.text
    lp = choice.logprobs
    assert len(lp.tokens) == len(ids) + out.usage.completion_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    # the prompt's log-probabilities are the model's own: one forward pass, float64 softmax
    model = load_checkpoint(tiny_checkpoint).eval()
    with torch.no_grad():
        logp = model(torch.tensor([ids]))[0, :-1].double().log_softmax(-1)
    expected = logp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(lp.token_logprobs[1: len(ids)], dtype=torch.float64), expected,
                               atol=1e-4, rtol=0)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert lp.text_offset[len(ids)] == len(state.tokenizer.decode(ids))  # the first generated token starts after


def test_echo_with_max_tokens_zero_scores_a_prompt_that_fills_the_context(server, client):
    state = server[1]
    ids = [(7 * i) % 200 + 5 for i in range(state.max_model_len)]
    out = client.completions.create(model="tiny", prompt=ids, max_tokens=0, echo=True, logprobs=0)
    lp = out.choices[0].logprobs
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 0
    assert len(lp.token_logprobs) == len(ids) and all(x is not None for x in lp.token_logprobs[1:])
    assert post(server, "/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 0}).status_code == 400


def test_logprobs_zero_returns_the_chosen_tokens_log_probability(client):
    out = client.completions.create(model="tiny", prompt="The list", max_tokens=4, temperature=0, logprobs=0)
    lp = out.choices[0].logprobs
    assert len(lp.token_logprobs) == out.usage.completion_tokens
    assert all(len(top) == 1 and list(top.values())[0] == value for top, value in zip(lp.top_logprobs, lp.token_logprobs))


def test_streamed_completion_carries_the_same_log_probabilities(client):
    full = client.completions.create(model="tiny", prompt="The list", max_tokens=8, temperature=0, logprobs=2)
    chunks = list(client.completions.create(model="tiny", prompt="The list", max_tokens=8, temperature=0, logprobs=2,
                                            stream=True))
    streamed = [v for c in chunks if c.choices and c.choices[0].logprobs for v in c.choices[0].logprobs.token_logprobs]
    assert streamed == pytest.approx(full.choices[0].logprobs.token_logprobs)
    offsets = [v for c in chunks if c.choices and c.choices[0].logprobs for v in c.choices[0].logprobs.text_offset]
    assert offsets == full.choices[0].logprobs.text_offset


def test_chat_stream_drops_no_log_probabilities(client):
    messages = [{"role": "user", "content": "Return the"}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0, logprobs=True)
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0,
                                                 logprobs=True, stream=True))
    streamed = [t.logprob for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert streamed == pytest.approx([t.logprob for t in full.choices[0].logprobs.content])


def test_a_batch_of_token_id_prompts_answers_each(client):
    prompts = [[5, 6, 7, 8], [9, 10, 11]]
    both = client.completions.create(model="tiny", prompt=prompts, max_tokens=4, temperature=0)
    alone = [client.completions.create(model="tiny", prompt=p, max_tokens=4, temperature=0).choices[0].text
             for p in prompts]
    assert [c.text for c in sorted(both.choices, key=lambda c: c.index)] == alone


def test_streams_equal_the_whole_answer_whatever_the_stop_strings(client):
    full = client.completions.create(model="tiny", prompt="The list of", max_tokens=24, temperature=0).choices[0].text
    cuts = sorted({max(1, len(full) * k // 7) for k in range(1, 7)})
    for cut in cuts:
        for width in (1, 2, 4):
            stop = full[cut: cut + width]
            if not stop.strip():
                continue
            whole = client.completions.create(model="tiny", prompt="The list of", max_tokens=24, temperature=0,
                                              stop=[stop, "zzqq"]).choices[0].text
            chunks = client.completions.create(model="tiny", prompt="The list of", max_tokens=24, temperature=0,
                                               stop=[stop, "zzqq"], stream=True)
            assert "".join(c.choices[0].text for c in chunks if c.choices) == whole, (stop, whole)


def test_usage_only_when_asked_and_stream_options_need_a_stream(server, client):
    chunks = list(client.completions.create(model="tiny", prompt="x", max_tokens=3, stream=True))
    assert all(c.usage is None for c in chunks)
    chunks = list(client.completions.create(model="tiny", prompt="x", max_tokens=3, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens >= 1 and chunks[-1].choices == []
    r = post(server, "/v1/completions", {"model": "tiny", "prompt": "x", "stream_options": {"include_usage": True}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"


@pytest.mark.parametrize("seed", [-1, 2**64])
@pytest.mark.parametrize("stream", [False, True])
def test_out_of_range_seed_is_a_400(server, seed, stream):
    r = post(server, "/v1/completions", {"model": "tiny", "prompt": "x", "seed": seed, "stream": stream})
    assert r.status_code == 400 and r.json()["error"]["param"] == "seed"


def test_max_tokens_beyond_the_context_names_the_limit(server):
    for field, path, extra in [("max_tokens", "/v1/completions", {"prompt": "x"}),
                               ("max_tokens", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})]:
        r = post(server, path, {"model": "tiny", field: 10**6, **extra})
        assert r.status_code == 400 and str(server[1].max_model_len) in r.json()["error"]["message"]
    r = post(server, "/v1/chat/completions", {"model": "tiny", "max_completion_tokens": 10**6,
                                              "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400


def test_best_of_returns_the_likeliest_of_more_samples(server, client):
    out = client.completions.create(model="tiny", prompt="The", max_tokens=5, temperature=1.0, n=2, best_of=5, seed=3,
                                    logprobs=0)
    assert sorted(c.index for c in out.choices) == [0, 1]
    sums = [sum(c.logprobs.token_logprobs) for c in sorted(out.choices, key=lambda c: c.index)]
    assert sums[0] >= sums[1]
    assert post(server, "/v1/completions", {"model": "tiny", "prompt": "x", "n": 3, "best_of": 2}).status_code == 400
    assert post(server, "/v1/completions", {"model": "tiny", "prompt": "x", "best_of": 2, "stream": True}).status_code == 400


def test_logit_bias_is_applied_and_validated(server, client):
    out = client.completions.create(model="tiny", prompt="The", max_tokens=4, temperature=0, logit_bias={"42": 100},
                                    logprobs=0)
    assert out.choices[0].text == server[1].tokenizer.decode([42] * 4)
    vocab = server[1].tokenizer.vocab_size
    for bias in ({str(vocab): 1}, {"5": 101}, {"x": 1}):
        r = post(server, "/v1/completions", {"model": "tiny", "prompt": "x", "logit_bias": bias})
        assert r.status_code == 400 and r.json()["error"]["param"].startswith("logit_bias"), r.text


def test_wrong_method_is_an_invalid_request(server):
    r = httpx.get(server[0] + "/v1/completions", headers=HEADERS)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_one_model_by_id(server, client):
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")


def test_cached_prompt_tokens_are_reported(server):
    prompt = [(13 * i) % 97 + 100 for i in range(40)]  # token ids no other test sends
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 2, "temperature": 0}
    first = post(server, "/v1/completions", body).json()["usage"]
    second = post(server, "/v1/completions", body).json()["usage"]
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert 0 < second["prompt_tokens_details"]["cached_tokens"] < second["prompt_tokens"]


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}, "ok": {"type": "boolean"}},
          "required": ["name", "ok"], "additionalProperties": False}


def test_json_schema_replies_parse_and_validate(client):
    import json

    fmt = {"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}}
    out = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Return the"}],
                                         max_tokens=48, temperature=1.0, n=4, seed=1, response_format=fmt)
    for choice in out.choices:
        value = json.loads(choice.message.content)
        assert set(value) == {"name", "ok"} and isinstance(value["ok"], bool) and len(value["name"]) <= 6
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Return the"}],
                                            max_tokens=48, temperature=0, response_format=fmt, stream=True)
    assert set(json.loads("".join(c.choices[0].delta.content or "" for c in stream if c.choices))) == {"name", "ok"}
    text = client.completions.create(model="tiny", prompt="x", max_tokens=24, temperature=0,
                                     extra_body={"guided_choice": ["red", "green"]}).choices[0].text
    assert text in ("red", "green")


def test_json_object_mode(client):
    import json

    out = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=64,
                                         temperature=0, response_format={"type": "json_object"})
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(out.choices[0].message.content), dict)


def test_an_invalid_schema_is_a_400_naming_the_problem(server):
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    r = post(server, "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                              "response_format": fmt})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    assert "nonsense" in r.json()["error"]["message"]
    r = post(server, "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                              "response_format": {"type": "json_schema"}})
    assert r.status_code == 400
