"""Stop strings for batched generation. Generated text is cut at the first stop string, so
whatever follows a token containing one is thrown away: every such token can end its row, and a
batch whose rows all reached one stops early instead of running to max_new_tokens (few-shot
prompts stop at the newline after a short answer)."""

from __future__ import annotations

from collections.abc import Iterable


def cut_at_stops(text: str, stops: Iterable[str]) -> str:
    """text up to the first occurrence of any stop string."""
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def stop_token_ids(tokenizer, stops: Iterable[str]) -> set[int]:
    """Ids of the vocabulary tokens whose text contains a stop string."""
    stops = [s for s in stops if s]
    if not stops:
        return set()
    texts = [tokenizer.decode([i], skip_special_tokens=False) for i in range(tokenizer.vocab_size)]
    return {i for i, text in enumerate(texts) if any(stop in text for stop in stops)}
