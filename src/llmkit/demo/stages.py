"""Per-stage measurements for the lifecycle report: wall time and the process's peak resident memory
during the stage (Linux VmHWM, reset when the stage starts, so each stage's peak is its own), plus
whatever the stage reports (tokens/s, parameters, size on disk, its quality numbers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmkit.host.memory import process_memory_bytes, reset_peak_memory


def dir_size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


class StageLog:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[dict]:
        """Yields the stage's row for the caller to fill; time and peak memory are added on exit."""
        reset_peak_memory()
        row, started = {"stage": name}, time.perf_counter()
        yield row
        row["seconds"] = time.perf_counter() - started
        peak = process_memory_bytes("VmHWM")
        row["peak_rss_mib"] = None if peak is None else peak / 2**20
        self.rows.append(row)
