"""The server under abuse: hostile numbers and strings, huge bodies, abandoned requests, foreign
Host headers, unbounded metric labels. Every bad request gets a 4xx and harms no other client."""

import asyncio
import http.client
import threading
import time

import httpx
import pytest

from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state
from tests.serve.hostile import HOSTILE, HOSTILE_CHAT, STREAM_BODY, post_raw, start_streams, stream_completion


@pytest.fixture(scope="module")
def open_server(tiny_checkpoint):
    """No API key (so Host checks apply), a KV cache of 2,048 tokens, room for 256 sequences."""
    state = build_state(tiny_checkpoint, model_name="tiny", max_queue=256,
                        engine_config=EngineConfig(block_size=16, num_blocks=128))
    with BackgroundServer(state) as url:
        yield url, state


def _expected_stream(url):
    results = []
    stream_completion(url, STREAM_BODY, results)
    return results[0]


def test_hostile_requests_get_4xx_while_eight_streams_finish(open_server):
    url, state = open_server
    expected = _expected_stream(url)
    assert expected[2] and expected[1] == "length" and expected[3] is None
    threads, results = start_streams(url, 8)
    for raw, status in HOSTILE:
        response = post_raw(url, "/v1/completions", raw)
        assert response.status_code == status, (raw, response.text)
        assert "error" in response.json() if status != 200 else response.json()["choices"]
    for raw, status in HOSTILE_CHAT:
        response = post_raw(url, "/v1/chat/completions", raw)
        assert response.status_code == status, (raw, response.text)
    for thread in threads:
        thread.join(timeout=120)
    assert results == [expected] * 8


def test_invalid_values_keep_the_connection_alive(open_server):
    host, port = open_server[0].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v1/completions", body='{"model": "tiny", "prompt": "a", "seed": -5}',
                       headers={"content-type": "application/json"})
    first = connection.getresponse()
    assert first.status == 400 and b"seed" in first.read()
    sock = connection.sock
    connection.request("GET", "/health")
    second = connection.getresponse()
    assert second.status == 200 and second.read() and connection.sock is sock  # the same TCP connection


def test_body_limit_refuses_before_reading_and_health_stays_fast(open_server):
    url, _ = open_server
    huge = '{"model": "tiny", "prompt": "' + "a" * 5_000_000 + '"}'
    body = huge.encode()
    chunks = [body[i:i + 2**20] for i in range(0, len(body), 2**20)]  # built before timing starts
    latencies, done = [], threading.Event()
    prober_client = httpx.Client(timeout=5)
    prober_client.get(url + "/health")  # connected: the probes time the server, not connection setup

    def probe():
        while not done.is_set():
            started = time.perf_counter()
            assert prober_client.get(url + "/health").status_code == 200
            latencies.append(time.perf_counter() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        response = post_raw(url, "/v1/completions", huge)
        chunked = httpx.post(url + "/v1/completions", content=iter(chunks),
                             headers={"content-type": "application/json"}, timeout=60)
    finally:
        done.set()
        prober.join()
        prober_client.close()
    assert response.status_code == 413 and "--max-request-bytes" in response.json()["error"]["message"]
    assert chunked.status_code == 413
    # the event loop never stalls reading the body: nine probes in ten answer within 0.1 s, and
    # none waits long (a single slow probe is the other test worker's load on this 2-core machine)
    assert latencies and sorted(latencies)[int(0.9 * len(latencies))] < 0.1 and max(latencies) < 2.0, latencies


def test_abandoned_requests_are_aborted_and_the_server_recovers(open_server):
    url, state = open_server
    body = {"model": "tiny", "prompt": "Return the", "max_tokens": 1500, "temperature": 0, "ignore_eos": True}

    async def flood():
        async with httpx.AsyncClient(timeout=0.5, limits=httpx.Limits(max_connections=300)) as client:
            async def one():
                try:
                    await client.post(url + "/v1/completions", json=body)
                except httpx.TimeoutException:
                    pass
            await asyncio.gather(*(one() for _ in range(200)))

    asyncio.run(flood())
    deadline = time.time() + 2.0
    while time.time() < deadline and (state.engine.stats()["running"] or state.engine.stats()["waiting"]):
        time.sleep(0.05)
    stats = state.engine.stats()
    assert stats["running"] == 0 and stats["waiting"] == 0, stats
    ok = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "a", "max_tokens": 2}, timeout=30)
    assert ok.status_code == 200


def test_context_limit_is_a_400_naming_it_and_the_default_fits(open_server):
    url, state = open_server
    too_long = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "a", "max_tokens": 5000}, timeout=30)
    assert too_long.status_code == 400 and str(state.max_model_len) in too_long.json()["error"]["message"]
    chat = httpx.post(url + "/v1/chat/completions", timeout=60,
                      json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    assert chat.status_code == 200  # no max_tokens: the reply may fill what the context has left


def test_queue_counts_prompts_not_requests(tiny_checkpoint):
    state = build_state(tiny_checkpoint, model_name="tiny", api_key=None, max_queue=8,
                        engine_config=EngineConfig(block_size=16, num_blocks=64))
    with BackgroundServer(state) as url:
        many = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": ["a"] * 10, "max_tokens": 2}, timeout=30)
        assert many.status_code == 400 and "--max-queue" in many.json()["error"]["message"]
        fits = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": ["a"] * 8, "max_tokens": 2}, timeout=30)
        assert fits.status_code == 200 and len(fits.json()["choices"]) == 8


def test_metrics_labels_are_bounded_and_docs_can_be_protected(tiny_checkpoint):
    state = build_state(tiny_checkpoint, model_name="tiny", api_key="k", protect_docs=True,
                        engine_config=EngineConfig(block_size=16, num_blocks=16))
    with BackgroundServer(state) as url:
        for i in range(20):
            httpx.get(f"{url}/probe-{i}")
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/openapi.json").status_code == 401
        text = httpx.get(url + "/metrics", headers={"authorization": "Bearer k"}).text
    assert "probe-" not in text and 'endpoint="other",status="404"' in text


def test_foreign_host_header_is_refused_without_an_api_key(open_server):
    url, _ = open_server
    refused = httpx.get(url + "/v1/models", headers={"host": "attacker.example"})
    assert refused.status_code == 400 and "--allowed-hosts" in refused.json()["error"]["message"]
    assert httpx.get(url + "/v1/models", headers={"host": "localhost:8000"}).status_code == 200
