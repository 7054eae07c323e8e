"""Shutdown under load and untrusted chat templates: answers end as JSON or an SSE error event,
never a cut connection, and the server stops within its graceful timeout."""

import json
import shutil
import signal
import threading
import time

import httpx
import pytest

from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state
from tests.serve.hostile import stream_completion

LONG = {"model": "tiny", "prompt": "Return the", "max_tokens": 300, "temperature": 0, "ignore_eos": True}


def _slow_engine(state, seconds: float) -> None:
    engine = state.engine.engine
    step = engine.step
    engine.step = lambda: (time.sleep(seconds), step())[1]


def test_drain_past_the_timeout_ends_requests_with_json_errors(tiny_checkpoint):
    state = build_state(tiny_checkpoint, model_name="tiny", engine_config=EngineConfig(block_size=16, num_blocks=64))
    _slow_engine(state, 0.05)  # 300 tokens take 15 s: far past the 2 s drain
    background = BackgroundServer(state, graceful_timeout=2.0)
    with background as url:
        streams, plain = [], {}
        stream_thread = threading.Thread(target=stream_completion, args=(url, LONG, streams))
        plain_thread = threading.Thread(target=lambda: plain.setdefault(
            "response", httpx.post(url + "/v1/completions", json=LONG, timeout=30)))
        stream_thread.start(), plain_thread.start()
        time.sleep(1.0)
        started = time.perf_counter()
        background.server.handle_exit(signal.SIGTERM, None)
        late = httpx.post(url + "/v1/completions", json=LONG, timeout=5)
        stream_thread.join(15), plain_thread.join(15)
        background.thread.join(10)
        stopped = time.perf_counter() - started
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    response = plain["response"]
    assert response.status_code == 503 and response.json()["error"]["code"] == "server_shutting_down"
    text, reason, done, error = streams[0]
    assert error["code"] == "server_shutting_down" and done and text  # tokens, then an error event, then [DONE]
    assert stopped < 2.0 + 1.5, stopped


@pytest.fixture
def looping_template(tiny_checkpoint, tmp_path):
    path = tmp_path / "looping"
    shutil.copytree(tiny_checkpoint, path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}"
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def test_a_looping_chat_template_is_stopped_and_others_are_served(looping_template):
    state = build_state(looping_template, model_name="tiny", engine_config=EngineConfig(block_size=16, num_blocks=64))
    with BackgroundServer(state) as url:
        started = time.perf_counter()
        chat = httpx.post(url + "/v1/chat/completions", timeout=30,
                          json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 400 and "chat template" in chat.json()["error"]["message"]
        assert time.perf_counter() - started < 5
        plain = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "a", "max_tokens": 2}, timeout=30)
        assert plain.status_code == 200
