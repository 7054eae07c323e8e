"""The OpenAI-compatible HTTP API on top of the AsyncEngine (FastAPI).

    GET  /health                 liveness (no key needed)
    GET  /metrics                Prometheus text (no key needed)
    GET  /v1/models
    POST /v1/completions         prompt (text, texts, or token ids); stream=true for SSE
    POST /v1/chat/completions    messages through the checkpoint's chat template; stream=true for SSE

Every accepted request counts against `max_queue` until it is answered; beyond that the server
answers 429 with Retry-After instead of queueing without bound. A streaming client that
disconnects cancels its response task, which aborts the request and frees its KV blocks.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from llmkit.errors import LlmkitError
from llmkit.infer.async_engine import AsyncEngine
from llmkit.infer.engine import Completion
from llmkit.infer.sampling_params import SamplingParams
from llmkit.serve import responses as R
from llmkit.serve.errors import APIError, install_handlers
from llmkit.serve.metrics import ServerMetrics
from llmkit.serve.protocol import ChatCompletionRequest, CompletionRequest


@dataclass
class ServerState:
    engine: AsyncEngine
    tokenizer: object
    model_name: str
    max_model_len: int
    api_key: str | None = None
    max_queue: int = 256
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    in_flight: int = 0
    created: int = field(default_factory=lambda: int(time.time()))


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="llmkit", docs_url=None, redoc_url=None)
    app.state.llmkit = state
    install_handlers(app)

    def authorised(request: Request) -> None:
        if state.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {state.api_key}".encode()):
            raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")

    @app.middleware("http")
    async def count(request: Request, call_next):
        response = await call_next(request)
        state.metrics.requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": state.model_name}

    @app.get("/metrics")
    async def metrics():
        state.metrics.in_flight.set(state.in_flight)
        return Response(state.metrics.render(state.engine.stats()), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", dependencies=[Depends(authorised)])
    async def models():
        return {"object": "list", "data": [{"id": state.model_name, "object": "model", "created": state.created,
                                            "owned_by": "llmkit", "max_model_len": state.max_model_len}]}

    @app.post("/v1/completions", dependencies=[Depends(authorised)])
    async def completions(body: CompletionRequest):
        _check_model(state, body.model)
        prompts = _completion_prompts(state, body.prompt)
        params = _sampling(body, body.max_tokens, body.logprobs)
        return await _answer(state, prompts, params, body.stream, chat=False,
                             include_usage=body.stream_options is not None and body.stream_options.include_usage)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorised)])
    async def chat_completions(body: ChatCompletionRequest):
        _check_model(state, body.model)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        try:
            text = state.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        except LlmkitError as error:
            raise APIError(400, str(error), param="messages") from None
        ids = state.tokenizer.encode(text, add_special_tokens=False)
        _check_length(state, ids, "messages")
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        params = _sampling(body, body.max_completion_tokens or body.max_tokens, logprobs)
        return await _answer(state, [ids], params, body.stream, chat=True,
                             include_usage=body.stream_options is not None and body.stream_options.include_usage)

    return app


def _check_model(state: ServerState, name: str) -> None:
    if name != state.model_name:
        raise APIError(404, f"model {name!r} does not exist; this server serves {state.model_name!r}",
                       param="model", code="model_not_found")


def _check_length(state: ServerState, ids: list[int], param: str) -> None:
    if not ids:
        raise APIError(400, f"{param} is empty", param=param)
    if len(ids) >= state.max_model_len:
        raise APIError(400, f"{param} has {len(ids)} tokens; the context holds {state.max_model_len} "
                            "(prompt plus at least one generated token)", param=param, code="context_length_exceeded")


def _completion_prompts(state: ServerState, prompt) -> list[list[int]]:
    if isinstance(prompt, str):
        texts = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [list(prompt)]
        texts = None
    else:
        texts = list(prompt)
    if texts is not None:
        prompts = [state.tokenizer.encode(t) for t in texts]
    if not prompts:
        raise APIError(400, "prompt is empty", param="prompt")
    if any(t < 0 or t >= state.tokenizer.vocab_size for p in prompts for t in p):
        raise APIError(400, f"prompt holds token ids outside the vocabulary (0..{state.tokenizer.vocab_size - 1})",
                       param="prompt")
    for ids in prompts:
        _check_length(state, ids, "prompt")
    return prompts


def _sampling(body, max_tokens: int | None, logprobs: int | None) -> SamplingParams:
    try:
        return SamplingParams(
            temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p, n=body.n,
            max_tokens=max_tokens or 2**31, stop=list(body.stop or []), seed=body.seed, ignore_eos=body.ignore_eos, logprobs=logprobs,
            presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
            repetition_penalty=body.repetition_penalty)
    except LlmkitError as error:
        raise APIError(400, str(error), param=str(error).split()[0]) from None


async def _answer(state: ServerState, prompts: list[list[int]], params: SamplingParams, stream: bool, chat: bool,
                  include_usage: bool):
    if state.in_flight >= state.max_queue:
        raise APIError(429, f"the server is at its limit of {state.max_queue} requests in flight; retry shortly",
                       headers={"Retry-After": "1"})
    state.in_flight += 1
    state.metrics.prompt_tokens.inc(sum(len(p) for p in prompts))
    prompt_tokens = sum(len(p) for p in prompts)
    request_id = R.new_id("chatcmpl" if chat else "cmpl")
    updates = _merged(state, prompts, params)
    if stream:
        n_choices = len(prompts) * params.n
        return StreamingResponse(_sse(state, updates, request_id, chat, include_usage, prompt_tokens, n_choices),
                                 media_type="text/event-stream")
    try:
        final: dict[int, Completion] = {}
        async for choice, update in updates:
            if update.finished:
                final[choice] = update
    finally:
        state.in_flight -= 1
    choices = sorted(final.items())
    build = R.chat_body if chat else R.completion_body
    return build(request_id, state.model_name, choices, state.tokenizer, params.logprobs is not None, prompt_tokens)


async def _merged(state: ServerState, prompts: list[list[int]], params: SamplingParams) -> AsyncIterator[tuple[int, Completion]]:
    """Updates of every prompt's completions as (choice index, Completion), timing TTFT and ITL."""
    arrival = time.perf_counter()
    streams = [state.engine.stream(p, params) for p in prompts]
    inbox: asyncio.Queue = asyncio.Queue()
    last_token: dict[int, float] = {}

    async def pump(k: int, stream):
        try:
            async for update in stream:
                await inbox.put((k * params.n + update.index, update))
        except Exception as error:  # noqa: BLE001 - handed to the consumer
            await inbox.put((k, error))
        finally:
            await inbox.put((k, None))

    tasks = [asyncio.create_task(pump(k, s)) for k, s in enumerate(streams)]
    open_streams = len(tasks)
    try:
        while open_streams:
            choice, update = await inbox.get()
            if update is None:
                open_streams -= 1
                continue
            if isinstance(update, Exception):
                raise APIError(400, str(update)) if isinstance(update, LlmkitError) else update
            if update.new_token_ids:
                now = time.perf_counter()
                histogram = state.metrics.inter_token_latency if choice in last_token else state.metrics.time_to_first_token
                histogram.observe(now - last_token.get(choice, arrival))
                last_token[choice] = now
                state.metrics.generation_tokens.inc(len(update.new_token_ids))
            yield choice, update
    finally:
        for task in tasks:
            task.cancel()  # a disconnected client: each stream's cleanup aborts its request


async def _sse(state: ServerState, updates, request_id: str, chat: bool, include_usage: bool, prompt_tokens: int,
               n_choices: int) -> AsyncIterator[str]:
    deltas, completion_tokens, finished = R.TextDeltas(), {}, 0
    try:
        if chat:
            for i in range(n_choices):
                yield R.sse(R.chat_chunk(request_id, state.model_name, i, {"role": "assistant", "content": ""}, None))
        async for choice, update in updates:
            completion_tokens[choice] = len(update.token_ids)
            text = deltas.delta(choice, update.text, update.finished)
            reason = update.finish_reason if update.finished else None
            finished += update.finished
            if not text and reason is None:
                continue
            if chat:
                logprobs = None
                if update.logprobs and update.new_token_ids:
                    logprobs = R.chat_logprobs(state.tokenizer, update.logprobs[-len(update.new_token_ids):])
                chunk = R.chat_chunk(request_id, state.model_name, choice, {"content": text} if text else {}, reason, logprobs)
            else:
                chunk = R.completion_chunk(request_id, state.model_name, choice, text, reason)
            usage = R.usage(prompt_tokens, sum(completion_tokens.values()))
            if reason is not None and finished == n_choices and not include_usage:
                chunk["usage"] = usage  # the last chunk carries usage
            yield R.sse(chunk)
        if include_usage:
            last = {"id": request_id, "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": int(time.time()), "model": state.model_name, "choices": [],
                    "usage": R.usage(prompt_tokens, sum(completion_tokens.values()))}
            yield R.sse(last)
        yield R.sse("[DONE]")
    except APIError as error:
        yield R.sse({"error": {"message": error.message, "type": "invalid_request_error", "param": error.param}})
    finally:
        state.in_flight -= 1
        await updates.aclose()
