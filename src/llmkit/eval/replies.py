"""Greedy chat replies through the checkpoint's chat template: what the task checks compare."""

from __future__ import annotations

from llmkit.infer.generate import generate_ids


def chat_replies(llm, prompts: list[str], max_new_tokens: int, system: str | None = None,
                 batch_size: int = 32) -> list[str]:
    """One greedy reply per prompt (optionally after a system message), in batches of `batch_size`."""
    tokenizer = llm.tokenizer
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    ids = []
    for prompt in prompts:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids.append(tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True),
                                    add_special_tokens=False))
    replies = []
    for i in range(0, len(ids), batch_size):
        outputs = generate_ids(llm.model, ids[i:i + batch_size], max_new_tokens, stop_ids=llm.stop_ids, pad_id=pad)
        replies += [tokenizer.decode(out) for out in outputs]
    return replies
