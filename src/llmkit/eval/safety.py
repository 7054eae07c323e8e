"""Refusal checks: how often a model refuses harmful requests, and how often it wrongly refuses
benign look-alikes (over-refusal). Before/after numbers for safety tuning."""

from __future__ import annotations

from llmkit.finetune.safety import is_refusal


def refusal_rates(llm, harmful: list[str], benign: list[str], max_new_tokens: int = 24) -> dict[str, float]:
    """Greedy chat replies through the checkpoint's template; the share classed as refusals."""
    def rate(prompts: list[str]) -> float:
        if not prompts:
            return float("nan")
        replies = chat_replies(llm, prompts, max_new_tokens)
        return sum(map(is_refusal, replies)) / len(replies)

    return {"refusal_rate": rate(harmful), "over_refusal_rate": rate(benign)}


def chat_replies(llm, prompts: list[str], max_new_tokens: int, system: str | None = None) -> list[str]:
    from llmkit.infer.generate import generate_ids

    tokenizer = llm.tokenizer
    ids = []
    for prompt in prompts:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids.append(tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True),
                                    add_special_tokens=False))
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    return [tokenizer.decode(out) for out in generate_ids(llm.model, ids, max_new_tokens, stop_ids=llm.stop_ids, pad_id=pad)]
