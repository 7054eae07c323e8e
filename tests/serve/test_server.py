"""A real server on 127.0.0.1 driven by the official `openai` client (and raw HTTP for bad input)."""

import asyncio

import httpx
import openai
import pytest

from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state

KEY = "test-key"


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    state = build_state(tiny_checkpoint, model_name="tiny", api_key=KEY, max_queue=8,
                        engine_config=EngineConfig(block_size=4, num_blocks=256))
    with BackgroundServer(state) as url:
        yield url, state


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(server[0] + "/health").json()["status"] == "ok"


def test_completion_with_usage_and_logprobs(client):
    out = client.completions.create(model="tiny", prompt="Return the", max_tokens=5, temperature=0, logprobs=2)
    choice = out.choices[0]
    assert choice.finish_reason in ("length", "stop") and out.usage.completion_tokens <= 5
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert len(choice.logprobs.token_logprobs) == out.usage.completion_tokens
    assert all(len(top) == 2 for top in choice.logprobs.top_logprobs)


def test_greedy_is_deterministic_and_n_gives_n_choices(client):
    a = client.completions.create(model="tiny", prompt="The list", max_tokens=6, temperature=0)
    b = client.completions.create(model="tiny", prompt="The list", max_tokens=6, temperature=0)
    assert a.choices[0].text == b.choices[0].text
    many = client.completions.create(model="tiny", prompt="The list", max_tokens=4, temperature=1.0, n=3, seed=1)
    assert sorted(c.index for c in many.choices) == [0, 1, 2]


def test_chat_completion_and_stream_agree(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Return the"}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    assert full.choices[0].message.role == "assistant"
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0,
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert all(c.usage is None for c in chunks)  # usage only when stream_options.include_usage asks
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason
    counted = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0,
                                                  stream=True, stream_options={"include_usage": True}))
    assert counted[-1].choices == [] and counted[-1].usage.completion_tokens == full.usage.completion_tokens
    assert all(c.usage is None for c in counted[:-1])


def test_stream_include_usage_sends_a_final_usage_chunk(client):
    chunks = list(client.completions.create(model="tiny", prompt="If the", max_tokens=4, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_raw_stream_ends_with_done(server):
    url, _ = server
    body = {"model": "tiny", "prompt": "The", "max_tokens": 3, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


@pytest.mark.parametrize("body,status,param", [
    ({"model": "nope", "prompt": "x"}, 404, "model"),
    ({"model": "tiny", "prompt": "x", "temperature": 5}, 400, "temperature"),
    ({"model": "tiny", "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "tiny", "prompt": "x", "n": 0}, 400, "n"),
    ({"model": "tiny"}, 400, "prompt"),
    ({"model": "tiny", "prompt": "word " * 2000}, 400, "prompt"),
    ({"model": "tiny", "prompt": [10**9]}, 400, "prompt"),
    ({"model": "tiny", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
])
def test_bad_input_gets_an_openai_error_naming_the_field(server, body, status, param):
    r = httpx.post(server[0] + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_malformed_json_and_bad_chat_messages(server):
    url, _ = server
    r = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={
        "Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]},
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("messages")


def test_api_key_is_required(server):
    url, _ = server
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_queue_limit_answers_429_with_retry_after(server):
    url, state = server
    state.in_flight += state.max_queue  # as if the queue were full
    try:
        r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "x"},
                       headers={"Authorization": f"Bearer {KEY}"})
    finally:
        state.in_flight -= state.max_queue
    assert r.status_code == 429 and r.headers["retry-after"] == "1"


def test_disconnect_mid_stream_frees_the_kv_blocks(server):
    url, state = server
    pool = state.engine.engine.scheduler.kv.pool

    async def read_a_little():
        async with httpx.AsyncClient(timeout=30) as http:
            body = {"model": "tiny", "prompt": "The quick brown fox", "max_tokens": 400, "stream": True,
                    "ignore_eos": True}
            async with http.stream("POST", url + "/v1/completions", json=body,
                                   headers={"Authorization": f"Bearer {KEY}"}) as r:
                seen = 0
                async for line in r.aiter_lines():
                    seen += line.startswith("data: ")
                    if seen >= 3:
                        return pool.num_free  # while generating: blocks are taken
        return None

    during = asyncio.run(read_a_little())
    assert during is not None and during < pool.num_blocks
    for _ in range(100):
        if pool.num_free == pool.num_blocks and not state.engine.engine.has_work():
            break
        asyncio.run(asyncio.sleep(0.05))
    assert pool.num_free == pool.num_blocks and not state.engine.engine.has_work()


def test_metrics_are_prometheus_text(server, client):
    client.completions.create(model="tiny", prompt="Return", max_tokens=3, temperature=0)
    text = httpx.get(server[0] + "/metrics").text
    for name in ("llmkit_requests_total", "llmkit_generation_tokens_total", "llmkit_time_to_first_token_seconds_bucket",
                 "llmkit_inter_token_latency_seconds_bucket", "llmkit_queue_depth", "llmkit_kv_cache_usage_ratio"):
        assert name in text
    line = next(l for l in text.splitlines() if l.startswith("llmkit_generation_tokens_total"))
    assert float(line.split()[-1]) >= 3


def test_stop_sequence_cuts_the_completion(client):
    free = client.completions.create(model="tiny", prompt="Return the", max_tokens=12, temperature=0,
                                     extra_body={"ignore_eos": True}).choices[0].text
    assert len(free) > 5
    stop = free[3:5]
    cut = client.completions.create(model="tiny", prompt="Return the", max_tokens=12, temperature=0, stop=[stop],
                                    extra_body={"ignore_eos": True}).choices[0]
    assert cut.finish_reason == "stop" and cut.text == free[: free.find(stop)]


def test_api_key_comes_from_the_environment(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("LLMKIT_API_KEY", "from-env")
    state = build_state(tiny_checkpoint, engine_config=EngineConfig(block_size=4, num_blocks=16))
    try:
        assert state.api_key == "from-env" and state.model_name == tiny_checkpoint.name
    finally:
        state.engine.shutdown()
