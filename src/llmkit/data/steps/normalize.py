"""Normalisation: Unicode NFC, control characters, broken whitespace, optional boilerplate lines."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from llmkit.data.steps.base import Result, Step, drop, keep

BOILERPLATE = ["cookie", "all rights reserved", "click here", "subscribe to our newsletter", "sign up for",
               "terms of service", "privacy policy", "share this", "follow us on"]
SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


@dataclass
class NormalizeOptions:
    form: str = "NFC"
    remove_control: bool = True
    fix_whitespace: bool = True
    remove_boilerplate: bool = False
    boilerplate_phrases: list[str] = field(default_factory=lambda: list(BOILERPLATE))
    min_chars: int = 1


class Normalize(Step):
    """Unicode NFC, control characters, broken whitespace, optional boilerplate lines."""

    name = "normalize"
    Options = NormalizeOptions

    def __call__(self, text: str) -> Result:
        o = self.options
        text = unicodedata.normalize(o.form, text.replace("\r\n", "\n").replace("\r", "\n"))
        if o.remove_control:
            text = "".join(c for c in text.translate(INVISIBLE)
                           if c in "\n\t" or unicodedata.category(c) != "Cc")
        lines = text.split("\n")
        if o.remove_boilerplate:
            phrases = [p.lower() for p in o.boilerplate_phrases]
            lines = [ln for ln in lines if not any(p in ln.lower() for p in phrases)]
        if o.fix_whitespace:
            lines = [SPACES.sub(" ", ln).strip() for ln in lines]
            text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        else:
            text = "\n".join(lines)
        return keep(text) if len(text) >= o.min_chars else drop("too_short")
