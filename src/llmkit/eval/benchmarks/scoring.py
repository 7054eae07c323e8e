"""Answer extraction and matching as lm-evaluation-harness does them, so generative benchmarks
score the same on the same outputs: regex filters (take the first match, or a chosen group of all
matches, with lm-eval's fallback), and exact match after removing ignored patterns, case and
punctuation. A record is right when the prediction matches any of its references."""

from __future__ import annotations

import re
import string

INVALID = "[invalid]"
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def regex_filter(text: str, pattern: str, group_select: int = 0) -> str:
    """lm-eval's regex filter: findall, pick `group_select`; a tuple of groups gives its first
    non-empty group; no match gives "[invalid]"."""
    matches = re.findall(pattern, text)
    if not matches:
        return INVALID
    match = matches[group_select]
    if isinstance(match, tuple):
        match = next((m for m in match if m), None)
        if match is None:
            return INVALID
    return match.strip()


def exact_match(prediction: str, references: list[str], ignore: tuple[str, ...] = (), ignore_case: bool = False,
                ignore_punctuation: bool = False) -> float:
    def clean(text: str) -> str:
        for pattern in ignore:
            text = re.sub(pattern, "", text)
        if ignore_case:
            text = text.lower()
        if ignore_punctuation:
            text = text.translate(_PUNCTUATION)
        return text

    predicted = clean(prediction)
    return float(any(predicted == clean(r) for r in references))
