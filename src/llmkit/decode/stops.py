"""When a completion ends, in one place: stop token ids (the checkpoint's eos and end-of-turn
tokens, plus the request's own) and stop strings. The token that ends a completion is not part
of it; text is cut before the first stop string, and a completion whose decoded text reaches one
ends at that token (a stop string may span several tokens, so text is what is checked)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

END_OF_TURN = re.compile(r"eot|end", re.IGNORECASE)


def _ids(value) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]


def cut_at_stops(text: str, stops: Iterable[str]) -> str:
    """text up to the first occurrence of any stop string."""
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]


@dataclass(frozen=True)
class StopConditions:
    token_ids: frozenset[int] = frozenset()
    strings: tuple[str, ...] = ()
    longest: int = field(init=False, default=0)

    def __post_init__(self):
        object.__setattr__(self, "longest", max((len(s) for s in self.strings), default=0))

    def ends_at(self, token: int) -> bool:
        return token in self.token_ids

    def reached_in(self, text: str) -> bool:
        """Whether the text decoded so far contains a stop string; only its tail can be new (a
        token's text is at most a few characters, 16 is ample)."""
        tail = text[-(self.longest + 16):]
        return any(s in tail for s in self.strings)

    def cut(self, text: str) -> str:
        return cut_at_stops(text, self.strings)


def end_of_turn_ids(tokenizer) -> set[int]:
    """Special tokens that the chat template writes and whose name says they end something."""
    template = tokenizer.config.get("chat_template") or ""
    specials = tokenizer.backend.get_added_tokens_decoder().values()
    found = {tokenizer.token_id(t.content) for t in specials if t.special and t.content in template
             and END_OF_TURN.search(t.content) and "start" not in t.content.lower()}
    return {i for i in found if i is not None}


def checkpoint_stop_ids(cfg, tokenizer=None, generation_config: dict | None = None) -> set[int]:
    """The ids that end a reply by default: the eos ids of generation_config.json, the model config
    and the tokenizer, and the chat template's own end-of-turn token (<|eot_id|>, <end_of_turn>,
    <|im_end|>, <|end|>, ...), which models emit after a reply instead of eos."""
    ids = set(_ids((generation_config or {}).get("eos_token_id"))) | set(_ids(cfg.eos_token_id))
    if tokenizer is not None:
        ids |= set(_ids(tokenizer.eos_id)) | end_of_turn_ids(tokenizer)
    return ids
