"""Server-sent events of a streamed completion or chat reply: text deltas that always add up to
the non-streamed answer, log-probabilities with the text they belong to, an echoed prompt first,
tool calls once a reply is whole, usage last when asked, and an error event instead of a cut."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from llmkit.decode.engine import Completion
from llmkit.serve import responses as R
from llmkit.serve.errors import APIError, as_api_error
from llmkit.serve.shape import Shape
from llmkit.serve.state import ServerState
from llmkit.serve.tool_calls import chat_message


async def sse_events(state: ServerState, updates, request_id: str, shape: Shape, prompts: list[list[int]],
                     n_choices: int) -> AsyncIterator[str]:
    deltas, completion_tokens, finished = R.TextDeltas(shape.stops), {}, 0
    echoed_texts = [state.tokenizer.decode(p) for p in prompts] if shape.echo else None  # decoded once
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
                yield R.sse(_echo_chunk(state, request_id, shape, prompts[choice // n], echoed_texts[choice // n],
                                        update, choice))
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
                    base = len(echoed_texts[choice // n]) if shape.echo else 0
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
        yield R.sse(R.error_event(error if isinstance(error, APIError) else as_api_error(error)))
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


def _echo_chunk(state: ServerState, request_id: str, shape: Shape, prompt: list[int], text: str, update: Completion,
                choice: int) -> dict:
    """A completion stream's first chunk of a choice with echo: the prompt's text (and log-probs)."""
    logprobs = R.echo_logprobs(state.tokenizer, prompt, update.prompt_logprobs) if shape.want_logprobs else None
    return R.completion_chunk(request_id, shape.model, choice, text, None, logprobs)
