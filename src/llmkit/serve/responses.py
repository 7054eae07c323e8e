"""OpenAI response bodies and server-sent-event chunks built from engine Completions."""

from __future__ import annotations

import json
import time
import uuid

from llmkit.decode.engine import Completion


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


class TextDeltas:
    """The new text of each choice since the last chunk. Held back until a later token settles it:
    a trailing U+FFFD (half of a multi-byte character), and a trailing piece that begins a stop
    string (if the stop string follows, the reply ends before it and that piece is never sent), so
    the chunks always add up to the non-streamed text."""

    def __init__(self, stops: list[str] | tuple[str, ...] = ()):
        self.sent: dict[int, str] = {}
        self.stops = [s for s in stops if s]

    def delta(self, choice: int, text: str, final: bool) -> str:
        sent = self.sent.get(choice, "")
        if not text.startswith(sent):  # a later token re-segmented the text: send nothing twice
            return ""
        ready = text if final else self._settled(text)
        if len(ready) <= len(sent):
            return ""
        self.sent[choice] = ready
        return ready[len(sent):]

    def _settled(self, text: str) -> str:
        text = text.rstrip("\ufffd")
        hold = max((k for stop in self.stops for k in range(min(len(stop) - 1, len(text)), 0, -1)
                    if text.endswith(stop[:k])), default=0)
        return text[: len(text) - hold]


def token_text(tokenizer, token: int) -> str:
    """One token as text, special tokens included; a token that is only part of a UTF-8 character
    is shown as its vocabulary entry instead of U+FFFD, so distinct tokens stay distinct keys."""
    text = tokenizer.decode([token], skip_special_tokens=False)
    if "\ufffd" in text:
        return tokenizer.backend.id_to_token(token) or text
    return text


def completion_logprobs(tokenizer, entries: list[dict | None], offset_base: int = 0, ids_before: list[int] = ()) -> dict:
    """OpenAI's legacy logprobs object. entries: per token {"token", "logprob", "top"} (None for a
    prompt's first token, which has no log-probability); text_offset: where each token starts in
    the choice's text, which begins `offset_base` characters after the text of `ids_before`."""
    ids = [e["token"] for e in entries]
    offsets, before = [], tokenizer.decode(list(ids_before)) if ids_before else ""
    for i in range(len(ids)):
        offsets.append(offset_base + len(tokenizer.decode(list(ids_before) + ids[:i])) - len(before))
    return {"tokens": [token_text(tokenizer, t) for t in ids],
            "token_logprobs": [None if e.get("logprob") is None else e["logprob"] for e in entries],
            "top_logprobs": [None if e.get("top") is None else _with_chosen(tokenizer, e) for e in entries],
            "text_offset": offsets}


def _with_chosen(tokenizer, entry: dict) -> dict:
    """The legacy top_logprobs of a token: the k likeliest and the chosen token itself (k + 1 at most)."""
    top = {token_text(tokenizer, t): lp for t, lp in entry["top"].items()}
    top.setdefault(token_text(tokenizer, entry["token"]), entry["logprob"])
    return top


def echo_logprobs(tokenizer, prompt_ids: list[int], scores: list[dict | None] | None) -> dict:
    """The legacy logprobs object of an echoed prompt (its first token has no log-probability)."""
    scores = scores or [None] * len(prompt_ids)
    entries = [score if score is not None else {"token": token, "logprob": None, "top": None}
               for token, score in zip(prompt_ids, scores, strict=True)]
    return completion_logprobs(tokenizer, entries)


def merge_logprobs(first: dict, second: dict) -> dict:
    return {key: first[key] + second[key] for key in first}


def chat_logprobs(tokenizer, entries: list[dict]) -> dict:
    def item(token: int, logprob: float) -> dict:
        text = token_text(tokenizer, token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [item(e["token"], e["logprob"]) | {"top_logprobs": [item(t, lp) for t, lp in e["top"].items()]}
                        for e in entries]}


def usage_of(choices: list[tuple[int, Completion]], prompt_tokens: int, cached_tokens: int) -> dict:
    body = usage(prompt_tokens, sum(len(c.token_ids) for _, c in choices))
    body["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return body


def completion_body(request_id: str, model: str, choices: list[tuple[int, Completion, dict | None]], usage_body: dict) -> dict:
    """choices: (index, final Completion, its legacy logprobs object or None); text echoed already."""
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "text": c.text, "finish_reason": c.finish_reason, "logprobs": lp}
                        for i, c, lp in choices],
            "usage": usage_body}


def chat_body(request_id: str, model: str, choices: list[tuple[int, dict, str | None, Completion]], tokenizer,
              want_logprobs: bool, usage_body: dict) -> dict:
    """choices: (index, the assistant message, finish reason, the final Completion)."""
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "message": message, "finish_reason": reason,
                         "logprobs": chat_logprobs(tokenizer, c.logprobs) if want_logprobs else None}
                        for i, message, reason, c in choices],
            "usage": usage_body}


def completion_chunk(request_id: str, model: str, index: int, text: str, finish_reason: str | None,
                     logprobs: dict | None = None) -> dict:
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": logprobs}]}


def chat_chunk(request_id: str, model: str, index: int, delta: dict, finish_reason: str | None,
               logprobs: dict | None = None) -> dict:
    return {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": logprobs}]}


def error_event(error) -> dict:
    """The last SSE event of a stream that cannot finish: OpenAI's error object (an APIError)."""
    from llmkit.serve.errors import ERROR_TYPES

    return {"error": {"message": error.message, "type": ERROR_TYPES.get(error.status, "server_error"),
                      "param": error.param, "code": error.code}}
