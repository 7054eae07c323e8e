"""Benchmark files in the layouts they are distributed in: the original releases (CSV, JSON,
JSONL, gzipped JSONL) and the Hugging Face dataset exports (parquet shards, JSONL). A benchmark
names the file patterns of each split; this module finds and reads them, nothing more."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.eval.task_spec import parse_jsonl

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".jsonl.gz", ".json.gz")


def read_rows(path: str | Path, fieldnames: list[str] | None = None) -> list[dict]:
    """Every row of one file as a dict. CSV without a header (MMLU's release) takes `fieldnames`."""
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"benchmark file {path} does not exist")
    name = path.name.lower()
    if name.endswith(".parquet"):
        return _parquet(path)
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    text = raw.decode("utf-8-sig")
    stem = name.removesuffix(".gz")
    if stem.endswith(".jsonl"):
        return parse_jsonl(text, path)
    if stem.endswith(".json"):
        return _json(text, path)
    if stem.endswith((".csv", ".tsv")):
        reader = csv.DictReader(io.StringIO(text), fieldnames=fieldnames, delimiter="\t" if stem.endswith(".tsv") else ",")
        return [dict(row) for row in reader]
    raise LlmkitError(f"{path}: unknown benchmark file type; expected one of {', '.join(SUFFIXES)}")


def _parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise LlmkitError(f"reading {path} needs pyarrow: pip install 'llmkit[parquet]'") from None
    return pq.read_table(path).to_pylist()


def _json(text: str, path: Path) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LlmkitError(f"{path}: not JSON ({error.msg})") from None
    if isinstance(data, dict):  # {"Data": [...]} (TriviaQA's release), {"data": [...]}, {"rows": [...]}
        for key in ("Data", "data", "rows", "examples"):
            if isinstance(data.get(key), list):
                return data[key]
        raise LlmkitError(f"{path}: a JSON object without a Data/data/rows list of records")
    if not isinstance(data, list):
        raise LlmkitError(f"{path}: expected a JSON list of records")
    return data


def matching_files(root: Path, patterns: list[str]) -> list[Path]:
    """The benchmark files matching the first pattern that matches any under root (sorted shards; [] if none)."""
    for pattern in patterns:
        found = sorted(p for p in root.glob(pattern) if p.is_file() and p.name.lower().endswith(SUFFIXES))
        if found:
            return found
    return []


def find_split(root: Path, patterns: list[str], what: str) -> list[Path]:
    """The files of one split: root itself when it is a file, else matching_files (which must find some)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise LlmkitError(f"{what}: {root} does not exist (give the benchmark's file or its directory)")
    found = matching_files(root, patterns)
    if not found:
        raise LlmkitError(f"{what}: no file under {root} matches {' or '.join(patterns)}")
    return found


def read_split(root: Path, patterns: list[str], what: str, fieldnames: list[str] | None = None) -> list[dict]:
    return [row for path in find_split(root, patterns, what) for row in read_rows(path, fieldnames)]
