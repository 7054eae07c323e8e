"""Step protocol. A document step sees one text and returns it (maybe edited) or drops it with a
reason. A corpus step (deduplication) needs the whole corpus: it computes compact keys per work
unit in parallel, decides once over all keys in unit order, then applies its decision per unit.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from llmkit.errors import LlmkitError

Result = tuple[str | None, str | None]  # (text, None) keeps; (None, reason) drops


def keep(text: str) -> Result:
    return text, None


def drop(reason: str) -> Result:
    return None, reason


@dataclasses.dataclass
class NoOptions:
    pass


class Step:
    name: ClassVar[str]
    scope: ClassVar[str] = "document"
    Options: ClassVar[type] = NoOptions
    reads_record: ClassVar[bool] = False  # True: called as step(text, record) (the record's metadata: url, ...)

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()
        self.counters: Counter = Counter()  # extra per-step counts, e.g. PII replacements by type

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Step:
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = set(values) - fields
        if unknown:
            raise LlmkitError(f"step {cls.name!r} has no option {sorted(unknown)[0]!r}; options: {sorted(fields)}")
        return cls(cls.Options(**values))

    def setup(self) -> None:
        """Load heavy resources (models, word lists); called once per worker process."""

    def __call__(self, text: str) -> Result:
        raise NotImplementedError


class CorpusStep(Step):
    """Three phases: `keys` per unit (parallel), `decide` over all units (once, in unit order),
    and an `applier` that replays the decision on the unit's documents in the same order."""

    scope: ClassVar[str] = "corpus"

    def keys(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Compact keys of one unit's documents, in order (saved as .npz)."""
        raise NotImplementedError

    def decide(self, key_files: list[Path]) -> list[dict[str, np.ndarray]]:
        """One decision per unit, made over the keys of all units in order."""
        raise NotImplementedError

    def applier(self, decision: dict[str, np.ndarray]) -> Callable[[str], Result]:
        """A function called once per document of the unit, in order."""
        raise NotImplementedError


def words(text: str) -> list[str]:
    return text.split()
