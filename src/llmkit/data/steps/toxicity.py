"""Toxicity filter: the share of a document's words found in a toxic-word list, with a threshold.
The list is replaceable (`word_list_file`), so users can bring their own lexicon."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.data.steps.wordlists import TOXIC_WORDS, load_word_list

WORD = re.compile(r"[a-z']+")


@dataclass
class ToxicityOptions:
    max_fraction: float = 0.02  # drop when more than this share of words are on the list
    word_list_file: str | None = None


class ToxicityFilter(Step):
    """Drop documents whose share of toxic-list words exceeds max_fraction."""

    name = "toxicity"
    Options = ToxicityOptions

    def setup(self) -> None:
        self.toxic = load_word_list(self.options.word_list_file, TOXIC_WORDS)

    def score(self, text: str) -> float:
        if not hasattr(self, "toxic"):
            self.setup()
        tokens = WORD.findall(text.lower())
        return sum(t in self.toxic for t in tokens) / max(1, len(tokens))

    def __call__(self, text: str) -> Result:
        return drop("toxic") if self.score(text) > self.options.max_fraction else keep(text)
