"""Exact match of greedy chat replies against reference answers (whitespace and case normalised),
for the built-in task sets (llmkit.data.synthetic_tasks) or any JSONL with prompt/answer."""

from __future__ import annotations

from llmkit.decode.chat import chat_replies, user_turn


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match_rate(llm, records: list[dict], max_new_tokens: int = 16) -> dict:
    """{"exact_match": share correct, "examples": [first few (prompt, answer, reply)]}."""
    replies = chat_replies(llm.model, llm.tokenizer, [user_turn(r["prompt"]) for r in records], max_new_tokens,
                           llm.stop_ids)
    hits = [normalise(reply) == normalise(str(r["answer"])) for r, reply in zip(records, replies, strict=True)]
    shown = [{"prompt": r["prompt"], "answer": r["answer"], "reply": reply} for r, reply in zip(records[:3], replies)]
    return {"exact_match": sum(hits) / max(len(hits), 1), "n": len(hits), "examples": shown}
