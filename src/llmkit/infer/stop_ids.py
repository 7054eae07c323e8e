"""Which token ids end a reply, read from the checkpoint: the eos ids of generation_config.json, the
model config and the tokenizer, and the chat template's own end-of-turn token (<|eot_id|>,
<end_of_turn>, <|im_end|>, <|end|>, ...), which models emit after a reply instead of eos."""

from __future__ import annotations

import re

END_OF_TURN = re.compile(r"eot|end", re.IGNORECASE)


def _ids(value) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]


def end_of_turn_ids(tokenizer) -> set[int]:
    """Special tokens that the chat template writes and whose name says they end something."""
    template = tokenizer.config.get("chat_template") or ""
    specials = tokenizer.backend.get_added_tokens_decoder().values()
    found = {tokenizer.token_id(t.content) for t in specials if t.special and t.content in template
             and END_OF_TURN.search(t.content) and "start" not in t.content.lower()}
    return {i for i in found if i is not None}


def stop_ids(cfg, tokenizer=None, generation_config: dict | None = None) -> set[int]:
    ids = set(_ids((generation_config or {}).get("eos_token_id"))) | set(_ids(cfg.eos_token_id))
    if tokenizer is not None:
        ids |= set(_ids(tokenizer.eos_id)) | end_of_turn_ids(tokenizer)
    return ids
