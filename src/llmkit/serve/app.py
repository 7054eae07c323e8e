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
from dataclasses import dataclass, field, replace

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from llmkit.errors import LlmkitError
from llmkit.decode.async_engine import AsyncEngine
from llmkit.decode.engine import Completion, RequestFailed
from llmkit.decode.grammar import Grammar
from llmkit.decode.sampling_params import SamplingParams
from llmkit.serve import responses as R
from llmkit.serve import tool_calls as T
from llmkit.serve.errors import APIError, install_handlers
from llmkit.serve.guard import LOOPBACK_HOSTS, Guard
from llmkit.serve.metrics import ServerMetrics
from llmkit.serve.protocol import ChatCompletionRequest, CompletionRequest
from llmkit.serve.lora_routes import add_lora_routes
from llmkit.serve.utility_routes import add_utility_routes


@dataclass
class ServerState:
    engine: AsyncEngine
    tokenizer: object
    model_name: str
    max_model_len: int
    api_key: str | None = None
    max_queue: int = 256
    max_request_bytes: int = 4 * 2**20
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # checked when no API key is set; () allows any
    protect_docs: bool = False  # /metrics and /openapi.json need the API key too
    allowed_origins: tuple[str, ...] = ()  # CORS origins browsers may call from; () adds no CORS headers
    loras: object | None = None  # a MultiLoRA (llmkit.finetune.peft.multi_lora) when adapters are served
    lora_in_flight: dict[str, int] = field(default_factory=dict)  # adapter name -> requests using it now
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    in_flight: int = 0
    draining: bool = False  # SIGTERM received: new work gets 503
    stopping: asyncio.Event | None = None  # set when the drain time is up: in-flight requests end with an error
    created: int = field(default_factory=lambda: int(time.time()))

    def stop_event(self) -> asyncio.Event:
        if self.stopping is None:
            self.stopping = asyncio.Event()
        return self.stopping


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
        tools = _tool_mode(body)
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


@dataclass(frozen=True)
class Shape:
    """How a request's completions become a response: the endpoint's format and its options."""

    chat: bool
    echo: bool  # completions: the prompt's text (and log-probs) come first
    want_logprobs: bool
    n: int  # choices returned per prompt (best_of may draw more)
    include_usage: bool  # streams: a last chunk with usage
    stops: tuple[str, ...]
    model: str  # the name asked for (the base model or a LoRA adapter), echoed in the response
    tools: ToolMode | None = None  # chat with tools: the replies' calls are read back
    adapter: tuple[int, int | None] = (0, None)  # its (LoRA slot, KV-cache salt)


@dataclass(frozen=True)
class ToolMode:
    """How a chat request's tools are used: "auto" parses calls from a free reply; "required" and a
    named function constrain the reply (`grammar`) and read it as calls."""

    choice: str  # "auto" | "required" | "named"
    names: frozenset[str]
    grammar: Grammar | None = None
    function: str | None = None  # the named function


def _tool_mode(body) -> ToolMode | None:
    if not body.tools or body.tool_choice == "none":
        return None
    tools = [t.model_dump() for t in body.tools]
    names = frozenset(t["function"]["name"] for t in tools)
    if body.tool_choice is None or body.tool_choice == "auto":
        return ToolMode("auto", names)
    if body.tool_choice == "required":
        return ToolMode("required", names, T.required_grammar(tools, body.parallel_tool_calls))
    name = body.tool_choice.function.name
    grammar = T.named_grammar(tools, name)
    if grammar is None:
        raise APIError(400, f"tool_choice names function {name!r}, which is not among the tools ({sorted(names)})",
                       param="tool_choice")
    return ToolMode("named", names, grammar, name)


def chat_message(text: str, reason: str | None, tools: ToolMode | None) -> tuple[dict, str | None]:
    """The assistant message of a reply (its tool calls read back when tools are in use) and the
    finish reason ("tool_calls" when it calls any)."""
    if tools is None:
        return {"role": "assistant", "content": text}, reason
    if tools.choice == "auto":
        content, calls = T.parse_auto(text, set(tools.names))
    elif reason != "stop":  # a constrained reply cut by max_tokens is not a whole call
        content, calls = text, []
    elif tools.choice == "required":
        content, calls = None, T.parse_required(text)
    else:
        content, calls = None, [T.tool_call(tools.function, text)]
    if not calls:
        return {"role": "assistant", "content": content}, reason
    return {"role": "assistant", "content": content, "tool_calls": calls}, "tool_calls"


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
        return StreamingResponse(_sse(state, updates, request_id, shape, prompts, sequences),
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
            echoed = R.completion_logprobs(tokenizer, R.prompt_entries(prompt, done.prompt_logprobs))
            logprobs = R.merge_logprobs(echoed, logprobs)
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
                raise _as_api_error(update)
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


def _as_api_error(error: Exception) -> Exception:
    """Bad input (a prompt too long for the KV cache, ...) is a 400; a request the engine could not
    finish is a 500 of its own; anything else stays itself (a bug: 500 from the fault handler)."""
    if isinstance(error, LlmkitError | ValueError):
        return APIError(400, str(error), code="invalid_request")
    if isinstance(error, RequestFailed):
        return APIError(500, f"generation failed for this request: {error}; other requests are unaffected",
                        code="generation_failed")
    return error


async def _sse(state: ServerState, updates, request_id: str, shape: Shape, prompts: list[list[int]],
               n_choices: int) -> AsyncIterator[str]:
    deltas, completion_tokens, finished = R.TextDeltas(shape.stops), {}, 0
    sent_logprobs: dict[int, int] = {}  # choice -> output tokens whose log-probs went out
    stopping = state.stop_event()
    n = n_choices // len(prompts)
    try:
        if shape.chat:
            for i in range(n_choices):
                yield R.sse(R.chat_chunk(request_id, shape.model, i, {"role": "assistant", "content": ""}, None))
        echoed: set[int] = set()
        async for choice, update in updates:
            if stopping.is_set():
                raise APIError(503, "the server shut down before this request finished; retry on another replica",
                               code="server_shutting_down")
            if shape.echo and choice not in echoed and (update.prompt_logprobs is not None or not shape.want_logprobs):
                echoed.add(choice)
                yield R.sse(_echo_chunk(state, request_id, shape, prompts[choice // n], update, choice))
            completion_tokens[choice] = len(update.token_ids)
            reason = update.finish_reason if update.finished else None
            finished += update.finished
            if shape.tools is not None:  # a reply is known to be calls or text only once it is whole
                if update.finished:
                    yield R.sse(_tool_chunk(state, request_id, choice, update, shape))
                continue
            text = deltas.delta(choice, update.text, update.finished)
            new_entries = update.logprobs[sent_logprobs.get(choice, 0):] if shape.want_logprobs else []
            if not text and reason is None:
                continue  # held back: these tokens' log-probs go out with the text that settles them
            sent_logprobs[choice] = len(update.logprobs)
            if shape.chat:
                logprobs = R.chat_logprobs(state.tokenizer, new_entries) if new_entries else None
                chunk = R.chat_chunk(request_id, shape.model, choice, {"content": text} if text else {}, reason,
                                     logprobs)
            else:
                logprobs = None
                if shape.want_logprobs:  # text_offset counts from the start of the choice's whole text
                    before = update.token_ids[: len(update.token_ids) - len(new_entries)]
                    base = len(state.tokenizer.decode(prompts[choice // n])) if shape.echo else 0
                    logprobs = R.completion_logprobs(state.tokenizer, new_entries,
                                                     base + len(state.tokenizer.decode(before)), before)
                chunk = R.completion_chunk(request_id, shape.model, choice, text, reason, logprobs)
            yield R.sse(chunk)
        if shape.include_usage:
            last = {"id": request_id, "object": "chat.completion.chunk" if shape.chat else "text_completion",
                    "created": int(time.time()), "model": shape.model, "choices": [],
                    "usage": R.usage(sum(len(p) for p in prompts), sum(completion_tokens.values()))}
            yield R.sse(last)
        yield R.sse("[DONE]")
    except Exception as error:  # noqa: BLE001 - the stream ends with an error event, never cut
        yield R.sse(R.error_event(error if isinstance(error, APIError) else _as_api_error(error)))
        yield R.sse("[DONE]")
    finally:
        state.in_flight -= n_choices
        state.lora_in_flight[shape.model] -= 1
        await updates.aclose()


def _tool_chunk(state: ServerState, request_id: str, choice: int, update: Completion, shape: Shape) -> dict:
    """The one chunk of a streamed reply to a request with tools: its text, or its calls as deltas."""
    message, reason = chat_message(update.text, update.finish_reason, shape.tools)
    delta = {"content": message["content"]} if message.get("content") else {}
    if "tool_calls" in message:
        delta["tool_calls"] = [{"index": j, **call} for j, call in enumerate(message["tool_calls"])]
    return R.chat_chunk(request_id, shape.model, choice, delta, reason)


def _echo_chunk(state: ServerState, request_id: str, shape: Shape, prompt: list[int], update: Completion,
                choice: int) -> dict:
    """A completion stream's first chunk of a choice with echo: the prompt's text (and log-probs)."""
    logprobs = None
    if shape.want_logprobs:
        logprobs = R.completion_logprobs(state.tokenizer, R.prompt_entries(prompt, update.prompt_logprobs))
    return R.completion_chunk(request_id, shape.model, choice, state.tokenizer.decode(prompt), None, logprobs)
