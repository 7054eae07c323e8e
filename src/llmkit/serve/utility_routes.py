"""The endpoints beside the OpenAI ones that users of vLLM rely on:

    POST /tokenize       {"prompt": text} or {"messages": [...]} -> {"tokens", "count", "max_model_len"}
    POST /detokenize     {"tokens": [...]} -> {"prompt": text}
    GET  /version        {"version": llmkit's}
    POST /v1/embeddings  OpenAI's shape; the embedding is the mean of the model's last hidden states
                         (after the final norm) over the input's tokens, L2-normalised

A decoder LM is not trained for embeddings: these are what the model has, documented as such, not
a retrieval model's. CORS (`--allowed-origins`) is added by `create_app`.
"""

from __future__ import annotations

import asyncio
import base64

import torch
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from llmkit.serve.errors import APIError
from llmkit.serve.protocol import ChatMessage


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    tokens: list[int]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: str = Field(default="float", pattern="^(float|base64)$")


def add_utility_routes(app: FastAPI, state, authorised, check_model, check_length) -> None:
    @app.get("/version")
    async def version():
        from importlib.metadata import version as installed_version

        return {"version": installed_version("llmkit")}

    @app.post("/tokenize", dependencies=[Depends(authorised)])
    async def tokenize(body: TokenizeRequest):
        if (body.prompt is None) == (body.messages is None):
            raise APIError(400, "give either prompt or messages", param="prompt")
        if body.model is not None:
            check_model(state, body.model)
        if body.prompt is not None:
            tokens = await asyncio.to_thread(state.tokenizer.encode, body.prompt, body.add_special_tokens)
        else:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
            text = await asyncio.to_thread(state.tokenizer.apply_chat_template, messages, body.add_generation_prompt)
            tokens = state.tokenizer.encode(text, add_special_tokens=False)
        return {"count": len(tokens), "max_model_len": state.max_model_len, "tokens": tokens}

    @app.post("/detokenize", dependencies=[Depends(authorised)])
    async def detokenize(body: DetokenizeRequest):
        vocab = state.tokenizer.vocab_size
        if any(not 0 <= t < vocab for t in body.tokens):
            raise APIError(400, f"tokens hold ids outside the vocabulary (0..{vocab - 1})", param="tokens")
        return {"prompt": state.tokenizer.decode(body.tokens)}

    @app.post("/v1/embeddings", dependencies=[Depends(authorised)])
    async def embeddings(body: EmbeddingRequest):
        check_model(state, body.model)
        inputs = body.input
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        ids = [state.tokenizer.encode(x) if isinstance(x, str) else list(x) for x in inputs]
        for row in ids:
            check_length(state, row, "input")
        vectors = await asyncio.to_thread(_mean_pooled, state.engine.engine.model, ids)
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.numpy().tobytes()).decode() if body.encoding_format == "base64"
                 else v.tolist()} for i, v in enumerate(vectors)]
        tokens = sum(map(len, ids))
        return {"object": "list", "data": data, "model": state.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@torch.inference_mode()
def _mean_pooled(model, rows: list[list[int]]) -> list[torch.Tensor]:
    """One forward pass per input (no padding to reason about); float32 unit vectors (C,)."""
    device = next(model.parameters()).device
    out = []
    for row in rows:
        hidden = model.hidden_states(torch.tensor([row], device=device))[0]  # (T, C)
        mean = hidden.float().mean(0)
        out.append(torch.nn.functional.normalize(mean, dim=0).cpu())
    return out
