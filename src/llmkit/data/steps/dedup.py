"""Exact deduplication by a hash of normalised text: whole documents (the first occurrence in
corpus order is kept), or, across the whole corpus, repeated lines or paragraphs (CCNet-style,
arXiv 1911.00359): each segment is kept only where it first occurs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import xxhash

from llmkit.data.steps.base import CorpusStep, Result, drop, keep

SPACE = re.compile(r"\s+")


def text_hash(text: str) -> int:
    return xxhash.xxh64_intdigest(SPACE.sub(" ", text.lower()).strip().encode())


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a hash appears for the first time (in array order)."""
    mask = np.zeros(len(hashes), dtype=bool)
    mask[np.unique(hashes, return_index=True)[1]] = True
    return mask


@dataclass
class ExactDedupOptions:
    granularity: str = "document"  # document | line | paragraph


class ExactDedup(CorpusStep):
    """Drop exact duplicates (normalised-text hash) of documents, or of lines/paragraphs."""

    name = "exact_dedup"
    Options = ExactDedupOptions

    def _segments(self, text: str) -> list[str]:
        """The pieces deduplicated; blank separators are kept as they are."""
        if self.options.granularity == "document":
            return [text]
        separator = "\n" if self.options.granularity == "line" else "\n\n"
        return text.split(separator)

    def keys(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        hashes, counts = [], []
        for text in texts:
            segments = [s for s in self._segments(text) if s.strip()]
            hashes += [text_hash(s) for s in segments]
            counts.append(len(segments))
        return {"hashes": np.array(hashes, dtype=np.uint64), "counts": np.array(counts, dtype=np.int64)}

    def decide(self, key_files: list[Path]) -> list[dict[str, np.ndarray]]:
        loaded = [np.load(f) for f in key_files]
        sizes = [len(k["hashes"]) for k in loaded]
        keep_mask = first_occurrences(np.concatenate([k["hashes"] for k in loaded]) if loaded else np.zeros(0, np.uint64))
        parts = np.split(keep_mask, np.cumsum(sizes)[:-1]) if sizes else []
        return [{"keep": part} for part in parts]

    def applier(self, decision: dict[str, np.ndarray]) -> Callable[[str], Result]:
        flags = iter(decision["keep"].tolist())
        granularity = self.options.granularity

        def apply(text: str) -> Result:
            if granularity == "document":
                return keep(text) if next(flags) else drop("duplicate")
            separator = "\n" if granularity == "line" else "\n\n"
            kept = [s for s in self._segments(text) if not s.strip() or next(flags)]
            new_text = separator.join(kept).strip()
            return keep(new_text) if new_text else drop(f"duplicate_{granularity}s")

        return apply
