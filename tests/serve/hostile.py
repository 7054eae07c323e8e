"""Helpers for the abuse tests: raw streaming clients and hostile request bodies."""

from __future__ import annotations

import json
import threading

import httpx

STREAM_BODY = {"model": "tiny", "prompt": "Return the", "max_tokens": 24, "temperature": 0, "ignore_eos": True}

# (body as raw JSON text, expected status): each is bad input, or input that must be clamped and served.
HOSTILE = [
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "temperature": 1e-300}', 200),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "temperature": 5e-324, "top_p": 1e-300}', 200),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "repetition_penalty": 1e-300}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "repetition_penalty": 5e-324}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "repetition_penalty": 1e308}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "temperature": NaN}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "presence_penalty": Infinity}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "seed": -1}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "seed": 1180591620717411303424}', 400),
    ('{"model": "tiny", "prompt": "\\ud800 lone", "max_tokens": 4}', 400),
    ('{"model": "tiny", "prompt": ["ok", "\\udfff"], "max_tokens": 4}', 400),
    ('{"model": "tiny", "prompt": "a", "stop": ["\\ud83d"], "max_tokens": 4}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 100000000}', 400),
    ('{"model": "tiny", "prompt": [99999999], "max_tokens": 4}', 400),
    ('{"model": "tiny", "prompt": "a", "n": 100000}', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4, "logprobs": 1000}', 400),
    ('{"model": "tiny", "prompt": 5}', 400),
    ('[1, 2, 3]', 400),
    ('{"model": "tiny", "prompt": "a", "max_tokens": 4', 400),
]
HOSTILE_CHAT = [
    ('{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}', 400),
    ('{"model": "tiny", "messages": [{"role": "user", "content": ["just a string"]}]}', 400),
    ('{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}', 400),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "\\udc00"}]}', 400),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 1e-300}',
     200),
    ('{"model": "tiny", "messages": []}', 400),
]


def stream_completion(url: str, body: dict, results: list, timeout: float = 120) -> None:
    """Stream one completion over raw SSE; append (text, finish_reason, saw [DONE], error)."""
    text, reason, done, error = "", None, False, None
    try:
        with httpx.stream("POST", url + "/v1/completions", json={**body, "stream": True}, timeout=timeout) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: "):]
                if payload == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(payload)
                if "error" in chunk:
                    error = chunk["error"]
                    continue
                text += chunk["choices"][0]["text"]
                reason = chunk["choices"][0]["finish_reason"] or reason
    except Exception as failure:  # noqa: BLE001 - reported to the test
        error = repr(failure)
    results.append((text, reason, done, error))


def start_streams(url: str, count: int, body: dict = STREAM_BODY) -> tuple[list[threading.Thread], list]:
    results: list = []
    threads = [threading.Thread(target=stream_completion, args=(url, body, results)) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def post_raw(url: str, path: str, raw: str, **kw) -> httpx.Response:
    return httpx.post(url + path, content=raw.encode("utf-8", "surrogatepass"),
                      headers={"content-type": "application/json"}, timeout=60, **kw)
