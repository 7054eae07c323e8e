"""How well an HTML extractor recovers a page's main text: word-level precision and recall against
the labelled text (multiset overlap of lower-cased words, or of characters for scripts written
without spaces), as in the main-content extraction literature (e.g. Barbaresi's trafilatura
evaluation, ScrapingHub's article-extraction benchmark)."""

from __future__ import annotations

import re
from collections import Counter

WORD = re.compile(r"\w+", re.UNICODE)


def units(text: str) -> Counter:
    words = [w.lower() for w in WORD.findall(text)]
    spaced = [w for w in words if w.isascii() or len(w) < 12]
    return Counter(spaced + [ch for w in words if w not in spaced for ch in w])  # CJK runs count per character


def precision_recall(extracted: str, label: str) -> tuple[float, float]:
    got, want = units(extracted), units(label)
    common = sum((got & want).values())
    return common / max(sum(got.values()), 1), common / max(sum(want.values()), 1)
