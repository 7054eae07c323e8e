"""Small input corpora on disk for pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.data.planted import ENGLISH, near_duplicate, prose


def documents(n: int = 60) -> list[dict]:
    docs = [{"id": f"doc{i}", "text": prose(i, words=90), "url": f"https://example.org/{i}"} for i in range(n)]
    docs += [{"id": "dup-exact", "text": docs[3]["text"], "url": "x"},
             {"id": "dup-near", "text": near_duplicate(docs[5]["text"], 1, edits=1), "url": "y"},
             {"id": "short", "text": "This is the end of it.", "url": "z"},
             {"id": "pii", "text": ENGLISH[0] + " Contact me at someone@example.com.", "url": "p"},
             {"id": "german", "text": "Der Fluss stieg in der Nacht, und am Morgen war der Markt auf dem Hügel. " * 8}]
    return docs


def write_jsonl(path: Path, docs: list[dict], bad_lines: bool = False) -> Path:
    lines = [json.dumps(d) for d in docs]
    if bad_lines:
        lines.insert(4, "{not json")
        lines.insert(9, json.dumps({"id": "no-text"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every output file's bytes, keyed by relative path (the resumability/determinism check);
    timings.json records durations, so it is the one file expected to differ."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".work" not in p.parts and p.name != "timings.json"}
