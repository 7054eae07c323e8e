"""What every fine-tuning task reads and iterates: JSONL example files (errors name file:line) and
endless shuffled batches over a fixed list of examples, resumable by batch counter; prompt files
(RL and context distillation)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmkit.errors import LlmkitError


def read_jsonl(path: str | Path, what: str) -> list[tuple[str, Any]]:
    """(where, record) for every non-blank line, `where` being "file:line"; `what` names the data in
    errors ("fine-tuning data", "preference data")."""
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"{what} {path} does not exist")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as err:
            raise LlmkitError(f"{path}:{number}: not valid JSON ({err.msg}); each line must be one JSON object") from None
    return records


class ShuffledBatches:
    """Endless batches of `batch_size` items, reshuffled every epoch with a seed derived from
    (seed, epoch), each turned into model input by `collate`. Its state is the batch counter, so a
    resumed run continues with the next batch."""

    def __init__(self, items: Sequence, batch_size: int, collate: Callable[[list], Any], seed: int = 0,
                 what: str = "examples"):
        if not items:
            raise LlmkitError(f"no {what}")
        self.items, self.batch_size, self.collate, self.seed = items, batch_size, collate, seed
        self.step, self.rank, self.world_size = 0, 0, 1
        self._epoch, self._order = -1, []

    def shard(self, rank: int, world_size: int) -> ShuffledBatches:
        """Data parallel: each rank takes its own slice of every global batch of batch_size x world_size."""
        self.rank, self.world_size = rank, world_size
        return self

    def _order_of(self, epoch: int) -> list[int]:
        if epoch != self._epoch:  # one shuffle per epoch, not per item
            self._order = list(range(len(self.items)))
            random.Random(self.seed * 100_003 + epoch).shuffle(self._order)
            self._epoch = epoch
        return self._order

    def __iter__(self):
        return self

    def __next__(self):
        n, start = len(self.items), (self.step * self.world_size + self.rank) * self.batch_size
        picked = [self.items[self._order_of(i // n)[i % n]] for i in range(start, start + self.batch_size)]
        self.step += 1
        return self.collate(picked)

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]


def read_prompts(path: str | Path) -> list[dict]:
    records = []
    for where, record in read_jsonl(path, "prompt data"):
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise LlmkitError(f"{where}: each line needs a \"prompt\" string (and what the reward reads, e.g. \"answer\")")
        records.append(record)
    if not records:
        raise LlmkitError(f"{path} has no prompts")
    return records
