"""Replies through the checkpoint's own chat template: a conversation (message list) is rendered
with the generation prompt, and only the reply is decoded."""

from __future__ import annotations

from llmkit.decode.generate import generate_ids
from llmkit.decode.sampling_params import SamplingParams


def user_turn(message: str, system: str | None = None) -> list[dict]:
    """The message list of one user turn, after an optional system message."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]


def chat_prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the conversation rendered by the chat template, ready for the reply."""
    return tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True), add_special_tokens=False)


def chat_replies(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int, stop_ids,
                 params: SamplingParams | None = None, max_batch: int = 64) -> list[str]:
    """One reply per conversation (greedy unless params say otherwise)."""
    ids = [chat_prompt_ids(tokenizer, messages) for messages in conversations]
    outputs = generate_ids(model, ids, max_new_tokens, params, stop_ids, tokenizer, max_batch)
    return [tokenizer.decode(out) for out in outputs]
