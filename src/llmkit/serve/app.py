"""The OpenAI-compatible HTTP API on top of the AsyncEngine (FastAPI).

    GET  /health                 liveness (no key needed)
    GET  /metrics                Prometheus text (no key needed)
    GET  /v1/models, /v1/models/{id}
    POST /v1/completions         prompt (text, texts, token ids, or lists of them); echo, best_of; stream=true for SSE
    POST /v1/chat/completions    messages through the checkpoint's chat template; stream=true for SSE

Every accepted prompt counts against `max_queue` until it is answered (a request of 1,000
prompts counts 1,000); beyond that the server answers 429 with Retry-After instead of queueing
without bound. A client that disconnects, streaming or not, has its requests aborted and their KV
blocks freed within one engine step. One request's failure ends that request alone. Tokenization
and chat templates run off the event loop, so a huge prompt never stalls other clients. Limits
and the front-door checks (body size, Host, docs auth, draining) are in `guard.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from llmkit.errors import LlmkitError
from llmkit.decode.engine import Completion
from llmkit.decode.grammar import Grammar
from llmkit.decode.sampling_params import SamplingParams
from llmkit.serve import responses as R
from llmkit.serve.errors import APIError, as_api_error, install_handlers
from llmkit.serve.guard import Guard
from llmkit.serve.protocol import ChatCompletionRequest, CompletionRequest
from llmkit.serve.lora_routes import add_lora_routes
from llmkit.serve.shape import Shape
from llmkit.serve.state import ServerState
from llmkit.serve.streaming import sse_events
from llmkit.serve.tool_calls import chat_message, tool_mode
from llmkit.serve.utility_routes import add_utility_routes


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="llmkit", docs_url=None, redoc_url=None)
    app.state.llmkit = state
    install_handlers(app)
    app.add_middleware(Guard, state=state)
    if state.allowed_origins:  # CORS for browser clients, off unless origins are given
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(state.allowed_origins), allow_methods=["*"],
                           allow_headers=["*"])

    def authorised(request: Request) -> None:
        if state.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {state.api_key}".encode()):
            raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": state.model_name}

    @app.get("/metrics")
    async def metrics():
        state.metrics.in_flight.set(state.in_flight)
        return Response(state.metrics.render(state.engine.stats()), media_type="text/plain; version=0.0.4")

    def model_card(name: str) -> dict:
        card = {"id": name, "object": "model", "created": state.created, "owned_by": "llmkit",
                "max_model_len": state.max_model_len, "root": state.model_name, "parent": None}
        if name != state.model_name:
            card["parent"] = state.model_name  # a LoRA adapter over the base model
        return card

    @app.get("/v1/models", dependencies=[Depends(authorised)])
    async def models():
        adapters = list(state.loras.names) if state.loras is not None else []
        return {"object": "list", "data": [model_card(name) for name in [state.model_name, *adapters]]}

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(authorised)])
    async def model(model_id: str):
        _check_model(state, model_id)
        return model_card(model_id)

    add_lora_routes(app, state, authorised)

    @app.post("/v1/completions", dependencies=[Depends(authorised)])
    async def completions(body: CompletionRequest, request: Request):
        adapter = _check_model(state, body.model)
        _check_capacity(state, _prompt_count(body.prompt) * (body.best_of or body.n))
        prompts = await asyncio.to_thread(_completion_prompts, state, body.prompt, body.max_tokens == 0)
        params = _sampling(state, body, body.max_tokens, body.logprobs, prompts)
        if body.best_of is not None:  # best_of sequences drawn, the n likeliest returned (needs their log-probs)
            params = replace(params, n=body.best_of, logprobs=params.logprobs or 0)
        if body.echo and body.logprobs is not None:
            params = replace(params, prompt_logprobs=body.logprobs)
        params = await _constrained(state, body, params)
        shape = Shape(chat=False, echo=body.echo, want_logprobs=body.logprobs is not None, n=body.n,
                      include_usage=body.include_usage, stops=tuple(params.stop), model=body.model, adapter=adapter)
        return await _answer(state, request, prompts, params, body.stream, shape)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorised)])
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        adapter = _check_model(state, body.model)
        _check_capacity(state, body.n)
        messages = [body.template_message(m) for m in body.messages]
        tools = tool_mode(body)
        shown = [t.model_dump(exclude_none=True) for t in body.tools] if tools is not None else None
        ids = await asyncio.to_thread(_chat_prompt, state, messages, shown)
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        params = _sampling(state, body, body.max_completion_tokens or body.max_tokens, logprobs, [ids])
        params = await _constrained(state, body, params, tools.grammar if tools is not None else None)
        shape = Shape(chat=True, echo=False, want_logprobs=body.logprobs, n=body.n, include_usage=body.include_usage,
                      stops=tuple(params.stop), tools=tools, model=body.model, adapter=adapter)
        return await _answer(state, request, [ids], params, body.stream, shape)

    add_utility_routes(app, state, authorised, _check_model, _check_length)
    return app


def _chat_prompt(state: ServerState, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """The conversation (and the tools, for templates that show them) through the checkpoint's chat
    template, as token ids (runs on a worker thread)."""
    try:
        text = state.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tools=tools)
    except LlmkitError as error:
        raise APIError(400, str(error), param="messages") from None
    ids = state.tokenizer.encode(text, add_special_tokens=False)
    _check_length(state, ids, "messages")
    return ids


def _prompt_count(prompt) -> int:
    return len(prompt) if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list) else 1


def _check_capacity(state: ServerState, sequences: int) -> None:
    """429 when this request's sequences do not fit under max_queue now; 400 when they never could."""
    if sequences > state.max_queue:
        raise APIError(400, f"the request asks for {sequences} sequences (prompts x n); this server accepts at most "
                            f"{state.max_queue} at once (--max-queue)", param="prompt")
    if state.in_flight + sequences > state.max_queue:
        raise APIError(429, f"the server is at its limit of {state.max_queue} sequences in flight; retry shortly",
                       headers={"Retry-After": "1"})


def _check_model(state: ServerState, name: str) -> tuple[int, int | None]:
    """The (LoRA slot, KV-cache salt) a model name is served with: (0, None) for the base model."""
    if name == state.model_name:
        return 0, None
    if state.loras is not None and name in state.loras.names:
        return state.loras.names[name], state.loras.uids[name]
    served = [state.model_name, *(state.loras.names if state.loras is not None else [])]
    raise APIError(404, f"model {name!r} does not exist; this server serves {', '.join(map(repr, served))}",
                   param="model", code="model_not_found")


def _check_length(state: ServerState, ids: list[int], param: str, prompt_only: bool = False) -> None:
    if not ids:
        raise APIError(400, f"{param} is empty", param=param)
    if len(ids) > state.max_model_len or (len(ids) == state.max_model_len and not prompt_only):
        raise APIError(400, f"{param} has {len(ids)} tokens; the context holds {state.max_model_len} "
                            "(prompt plus at least one generated token)", param=param, code="context_length_exceeded")


def _completion_prompts(state: ServerState, prompt, prompt_only: bool = False) -> list[list[int]]:
    """Token ids of each prompt: a text, texts, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        prompts = [state.tokenizer.encode(prompt)]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [list(prompt)]
    else:
        prompts = [list(p) if isinstance(p, list) else state.tokenizer.encode(p) for p in prompt]
    if not prompts:
        raise APIError(400, "prompt is empty", param="prompt")
    if any(t < 0 or t >= state.tokenizer.vocab_size for p in prompts for t in p):
        raise APIError(400, f"prompt holds token ids outside the vocabulary (0..{state.tokenizer.vocab_size - 1})",
                       param="prompt")
    for ids in prompts:
        _check_length(state, ids, "prompt", prompt_only)
    return prompts


def _sampling(state: ServerState, body, max_tokens: int | None, logprobs: int | None,
              prompts: list[list[int]]) -> SamplingParams:
    """The request's SamplingParams; without max_tokens a reply may fill the context, and a given
    max_tokens that cannot fit after the longest prompt is a 400 naming the limit."""
    room = max(0, state.max_model_len - max(len(p) for p in prompts))
    if max_tokens is not None and max_tokens > room:
        raise APIError(400, f"prompt ({state.max_model_len - room} tokens) + max_tokens ({max_tokens}) exceeds the "
                            f"context of {state.max_model_len} tokens; lower max_tokens to at most {room}",
                       param="max_tokens", code="context_length_exceeded")
    try:
        return SamplingParams(
            temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p, n=body.n,
            max_tokens=room if max_tokens is None else max_tokens, stop=list(body.stop or []), seed=body.seed,
            ignore_eos=body.ignore_eos, logprobs=logprobs, presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty, repetition_penalty=body.repetition_penalty,
            logit_bias=_logit_bias(state, body.logit_bias))
    except LlmkitError as error:
        raise APIError(400, str(error), param=str(error).split()[0]) from None


def _grammar(body) -> tuple[Grammar, str] | None:
    """The structured output a request asks for, and the field that asked."""
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_object":
        return Grammar("json_object"), "response_format"
    if fmt is not None and fmt.type == "json_schema":
        return Grammar("json_schema", fmt.json_schema.json_schema), "response_format"
    if body.guided_json is not None:
        return Grammar("json_schema", body.guided_json), "guided_json"
    if body.guided_regex is not None:
        return Grammar("regex", body.guided_regex), "guided_regex"
    if body.guided_choice is not None:
        return Grammar("choice", body.guided_choice), "guided_choice"
    return None


async def _constrained(state: ServerState, body, params: SamplingParams, tool_grammar: Grammar | None = None) -> SamplingParams:
    """params with the request's grammar (its response format, or what its tool_choice requires),
    compiled here first so that an invalid one is a 400."""
    asked = _grammar(body)
    if tool_grammar is not None:
        if asked is not None:
            raise APIError(400, f"{asked[1]} cannot be combined with tool_choice 'required' or a named function",
                           param=asked[1])
        asked = (tool_grammar, "tools")
    if asked is None:
        return params
    grammar, field_name = asked
    try:
        await asyncio.to_thread(state.engine.engine.grammar_matcher, grammar)
    except LlmkitError as error:
        raise APIError(400, f"{field_name}: {error}", param=field_name, code="invalid_grammar") from None
    return replace(params, grammar=grammar)


def _logit_bias(state: ServerState, bias: dict[str, float] | None) -> dict[int, float] | None:
    if not bias:
        return None
    vocab = state.tokenizer.vocab_size
    out = {int(token): value for token, value in bias.items()}
    wrong = [t for t in out if not 0 <= t < vocab]
    if wrong:
        raise APIError(400, f"logit_bias names token {wrong[0]}, outside the vocabulary (0..{vocab - 1})",
                       param="logit_bias", code="invalid_value")
    return out


async def _answer(state: ServerState, request: Request, prompts: list[list[int]], params: SamplingParams,
                  stream: bool, shape: Shape):
    sequences = len(prompts) * params.n
    _check_capacity(state, sequences)  # again: tokenizing took time, others may have come in
    state.in_flight += sequences
    state.lora_in_flight[shape.model] = state.lora_in_flight.get(shape.model, 0) + 1  # unload waits for it
    state.metrics.prompt_tokens.inc(sum(len(p) for p in prompts))
    request_id = R.new_id("chatcmpl" if shape.chat else "cmpl")
    updates = _merged(state, prompts, params, shape.adapter)
    if stream:
        return StreamingResponse(sse_events(state, updates, request_id, shape, prompts, sequences),
                                 media_type="text/event-stream")
    try:
        final = await _collect_unless_gone(state, request, updates)
    finally:
        state.in_flight -= sequences
        state.lora_in_flight[shape.model] -= 1
    usage = R.usage_of(list(final.items()), sum(len(p) for p in prompts),
                       sum(final[k * params.n].cached_tokens for k in range(len(prompts))))
    if shape.chat:
        messages = [(i, *chat_message(c.text, c.finish_reason, shape.tools), c) for i, c in sorted(final.items())]
        return R.chat_body(request_id, shape.model, messages, state.tokenizer, shape.want_logprobs, usage)
    choices = []
    for k, prompt in enumerate(prompts):
        drawn = [final[k * params.n + i] for i in range(params.n)]
        if params.n > shape.n:  # best_of: the likeliest sequences, by summed log-probability
            drawn = sorted(drawn, key=lambda c: -sum(e["logprob"] for e in c.logprobs))[: shape.n]
        for i, done in enumerate(drawn):
            choices.append((k * shape.n + i, *_completion_choice(state, shape, prompt, done)))
    return R.completion_body(request_id, shape.model, choices, usage)


def _completion_choice(state: ServerState, shape: Shape, prompt: list[int], done: Completion) -> tuple[Completion, dict | None]:
    """A completion's choice (with the prompt's text and log-probs first, when echoed) and its
    legacy logprobs object."""
    tokenizer = state.tokenizer
    prompt_text = tokenizer.decode(prompt) if shape.echo else ""
    logprobs = None
    if shape.want_logprobs:
        logprobs = R.completion_logprobs(tokenizer, done.logprobs, len(prompt_text), prompt if shape.echo else ())
        if shape.echo:
            logprobs = R.merge_logprobs(R.echo_logprobs(tokenizer, prompt, done.prompt_logprobs), logprobs)
    if shape.echo:
        done = replace(done, text=prompt_text + done.text)
    return done, logprobs


async def _collect_unless_gone(state: ServerState, request: Request, updates) -> dict[int, Completion]:
    """The final Completion of every choice. If the client leaves first (or the server's drain time
    runs out), collection is cancelled, which aborts the requests and frees their blocks."""
    final: dict[int, Completion] = {}

    async def collect():
        async for choice, update in updates:
            if update.finished:
                final[choice] = update

    work = asyncio.ensure_future(collect())
    gone = asyncio.ensure_future(_client_gone(request))
    stopping = asyncio.ensure_future(state.stop_event().wait())
    try:
        await asyncio.wait([work, gone, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, gone, stopping):
            if not task.done():
                task.cancel()
        await asyncio.gather(work, gone, stopping, return_exceptions=True)
        await updates.aclose()
    if work.done() and not work.cancelled() and work.exception() is None:
        return final
    if work.done() and not work.cancelled():
        raise work.exception()
    if stopping.done() and not stopping.cancelled():
        raise APIError(503, "the server shut down before this request finished; retry on another replica",
                       code="server_shutting_down", headers={"Retry-After": "1"})
    raise APIError(499, "the client closed the connection", code="client_closed_request")


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body was read already, so receive() waits for that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _merged(state: ServerState, prompts: list[list[int]], params: SamplingParams,
                  adapter: tuple[int, int | None] = (0, None)) -> AsyncIterator[tuple[int, Completion]]:
    """Updates of every prompt's completions as (choice index, Completion), timing TTFT and ITL."""
    arrival = time.perf_counter()
    streams = [state.engine.stream(p, params, adapter=adapter) for p in prompts]
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
                raise as_api_error(update)
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
