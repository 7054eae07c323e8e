"""Per-step counters: documents and characters in and out, removal reasons, extra counts.
Each unit writes its own; the final stats.json sums them in unit order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepStats:
    name: str
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    removed: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)  # e.g. PII replacements by type

    def record(self, text_in: str, text_out: str | None, reason: str | None) -> None:
        self.docs_in += 1
        self.chars_in += len(text_in)
        if text_out is None:
            self.removed[reason] += 1
        else:
            self.docs_out += 1
            self.chars_out += len(text_out)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "docs_in": self.docs_in, "docs_out": self.docs_out, "chars_in": self.chars_in,
               "chars_out": self.chars_out, "removed": dict(sorted(self.removed.items()))}
        if self.counts:
            out["counts"] = dict(sorted(self.counts.items()))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepStats:
        return cls(d["name"], d["docs_in"], d["docs_out"], d["chars_in"], d["chars_out"],
                   Counter(d["removed"]), Counter(d.get("counts", {})))

    def merge(self, other: StepStats) -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.chars_in += other.chars_in
        self.chars_out += other.chars_out
        self.removed.update(other.removed)
        self.counts.update(other.counts)


def merge_step_lists(per_unit: list[list[dict]]) -> list[dict]:
    """Sum the step lists of all units, keeping step order."""
    totals: dict[str, StepStats] = {}
    for unit_steps in per_unit:
        for d in unit_steps:
            totals.setdefault(d["name"], StepStats(d["name"])).merge(StepStats.from_dict(d))
    return [s.to_dict() for s in totals.values()]
