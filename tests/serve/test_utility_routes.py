"""/tokenize, /detokenize, /version, /v1/embeddings and CORS, against a real server."""

import base64

import httpx
import numpy as np
import openai
import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    state = build_state(tiny_checkpoint, model_name="tiny", allowed_origins=("http://localhost:3000",),
                        engine_config=EngineConfig(block_size=4, num_blocks=128))
    with BackgroundServer(state) as url:
        yield url, state


def test_tokenize_and_detokenize_round_trip(server):
    url, state = server
    out = httpx.post(url + "/tokenize", json={"model": "tiny", "prompt": "The list of items"}).json()
    assert out["tokens"] == state.tokenizer.encode("The list of items") and out["count"] == len(out["tokens"])
    assert out["max_model_len"] == state.max_model_len
    text = httpx.post(url + "/detokenize", json={"tokens": out["tokens"]}).json()["prompt"]
    assert text == state.tokenizer.decode(out["tokens"])
    chat = httpx.post(url + "/tokenize", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    assert chat["count"] > 2
    assert httpx.post(url + "/detokenize", json={"tokens": [10**7]}).status_code == 400
    assert httpx.post(url + "/tokenize", json={}).status_code == 400


def test_version(server):
    from importlib.metadata import version

    import llmkit

    assert httpx.get(server[0] + "/version").json() == {"version": version("llmkit")} == {"version": llmkit.__version__}


def test_embeddings_are_normalised_mean_hidden_states(server, tiny_checkpoint):
    url, state = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    out = client.embeddings.create(model="tiny", input=["The list", "Return the number"])
    assert [d.index for d in out.data] == [0, 1]
    model = load_checkpoint(tiny_checkpoint).eval()
    for text, item in zip(["The list", "Return the number"], out.data, strict=True):
        with torch.no_grad():
            hidden = model.hidden_states(torch.tensor([state.tokenizer.encode(text)]))[0].mean(0)
        expected = torch.nn.functional.normalize(hidden, dim=0)
        torch.testing.assert_close(torch.tensor(item.embedding), expected, atol=1e-5, rtol=0)
    raw = httpx.post(url + "/v1/embeddings", json={"model": "tiny", "input": "The list", "encoding_format": "base64"})
    vector = np.frombuffer(base64.b64decode(raw.json()["data"][0]["embedding"]), dtype=np.float32)
    assert np.allclose(vector, out.data[0].embedding, atol=1e-6) and abs(np.linalg.norm(vector) - 1) < 1e-5


def test_cors_only_for_the_allowed_origin(server, tiny_checkpoint):
    url, _ = server
    allowed = httpx.options(url + "/v1/models", headers={"Origin": "http://localhost:3000",
                                                         "Access-Control-Request-Method": "GET"})
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:3000"
    other = httpx.get(url + "/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    plain = build_state(tiny_checkpoint, model_name="tiny", engine_config=EngineConfig(block_size=4, num_blocks=64))
    with BackgroundServer(plain) as second:
        response = httpx.get(second + "/health", headers={"Origin": "http://localhost:3000"})
        assert "access-control-allow-origin" not in response.headers
