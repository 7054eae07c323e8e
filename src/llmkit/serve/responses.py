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
    """The new text of each choice since the last chunk. A trailing U+FFFD (half of a multi-byte
    character) is held back until the next token completes it."""

    def __init__(self):
        self.sent: dict[int, str] = {}

    def delta(self, choice: int, text: str, final: bool) -> str:
        sent = self.sent.get(choice, "")
        if not text.startswith(sent):  # a later token re-segmented the text: send nothing twice
            return ""
        ready = text if final or not text.endswith("\ufffd") else text.rstrip("\ufffd")
        if len(ready) <= len(sent):
            return ""
        self.sent[choice] = ready
        return ready[len(sent):]


def token_text(tokenizer, token: int) -> str:
    """One token as text, special tokens included; a token that is only part of a UTF-8 character
    is shown as its vocabulary entry instead of U+FFFD, so distinct tokens stay distinct keys."""
    text = tokenizer.decode([token], skip_special_tokens=False)
    if "\ufffd" in text:
        return tokenizer.backend.id_to_token(token) or text
    return text


def completion_logprobs(tokenizer, done: Completion) -> dict:
    entries = done.logprobs
    return {"tokens": [token_text(tokenizer, e["token"]) for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{token_text(tokenizer, t): lp for t, lp in e["top"].items()} for e in entries],
            "text_offset": []}


def chat_logprobs(tokenizer, entries: list[dict]) -> dict:
    def item(token: int, logprob: float) -> dict:
        text = token_text(tokenizer, token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [item(e["token"], e["logprob"]) | {"top_logprobs": [item(t, lp) for t, lp in e["top"].items()]}
                        for e in entries]}


def completion_body(request_id: str, model: str, choices: list[tuple[int, Completion]], tokenizer, want_logprobs: bool,
                    prompt_tokens: int) -> dict:
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "text": c.text, "finish_reason": c.finish_reason,
                         "logprobs": completion_logprobs(tokenizer, c) if want_logprobs else None}
                        for i, c in choices],
            "usage": usage(prompt_tokens, sum(len(c.token_ids) for _, c in choices))}


def chat_body(request_id: str, model: str, choices: list[tuple[int, Completion]], tokenizer, want_logprobs: bool,
              prompt_tokens: int) -> dict:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason,
                         "logprobs": chat_logprobs(tokenizer, c.logprobs) if want_logprobs else None}
                        for i, c in choices],
            "usage": usage(prompt_tokens, sum(len(c.token_ids) for _, c in choices))}


def completion_chunk(request_id: str, model: str, index: int, text: str, finish_reason: str | None) -> dict:
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}]}


def chat_chunk(request_id: str, model: str, index: int, delta: dict, finish_reason: str | None,
               logprobs: dict | None = None) -> dict:
    return {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": logprobs}]}


def error_event(error) -> dict:
    """The last SSE event of a stream that cannot finish: OpenAI's error object (an APIError)."""
    from llmkit.serve.errors import ERROR_TYPES

    return {"error": {"message": error.message, "type": ERROR_TYPES.get(error.status, "server_error"),
                      "param": error.param, "code": error.code}}
