"""Refusal checks: how often a model refuses harmful requests, and how often it wrongly refuses
benign look-alikes (over-refusal). Before/after numbers for safety tuning."""

from __future__ import annotations

from llmkit.data.safety_sets import is_refusal
from llmkit.decode.chat import chat_replies, user_turn


def refusal_rates(llm, harmful: list[str], benign: list[str], max_new_tokens: int = 24) -> dict[str, float]:
    """Greedy chat replies through the checkpoint's template; the share classed as refusals."""
    def rate(prompts: list[str]) -> float:
        if not prompts:
            return float("nan")
        replies = chat_replies(llm.model, llm.tokenizer, [user_turn(p) for p in prompts], max_new_tokens, llm.stop_ids)
        return sum(map(is_refusal, replies)) / len(replies)

    return {"refusal_rate": rate(harmful), "over_refusal_rate": rate(benign)}
