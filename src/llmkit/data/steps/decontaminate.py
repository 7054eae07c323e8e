"""Decontamination: drop training documents that share an n-gram (13 words by default, as in
GPT-3's analysis, arXiv 2005.14165) with any evaluation set."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.errors import LlmkitError

TOKEN = re.compile(r"\w+", re.UNICODE)


def ngram_hashes(text: str, n: int) -> set[int]:
    tokens = TOKEN.findall(text.lower())
    if len(tokens) < n:  # short texts count as one n-gram of what they have
        return {xxhash.xxh64_intdigest(" ".join(tokens).encode())} if tokens else set()
    return {xxhash.xxh64_intdigest(" ".join(tokens[i:i + n]).encode()) for i in range(len(tokens) - n + 1)}


def _eval_texts(path: Path):
    """Every string in a JSONL evaluation file (questions, answers, choices), or a text file's lines."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        if path.suffix in (".jsonl", ".json"):
            try:
                yield from _strings(json.loads(line))
            except json.JSONDecodeError:
                yield line
        else:
            yield line


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@dataclass
class DecontaminateOptions:
    eval_files: list[str] = field(default_factory=list)  # set by --decontaminate FILES
    n: int = 13
    min_eval_tokens: int = 8  # shorter eval strings would match ordinary prose


class Decontaminate(Step):
    """Drop documents sharing an n-gram (default 13) with the --decontaminate files."""

    name = "decontaminate"
    Options = DecontaminateOptions

    def setup(self) -> None:
        self.eval_grams: set[int] = set()
        for name in self.options.eval_files:
            path = Path(name)
            if not path.is_file():
                raise LlmkitError(f"evaluation file {path} (from --decontaminate) does not exist")
            for text in _eval_texts(path):
                if len(TOKEN.findall(text)) >= self.options.min_eval_tokens:
                    self.eval_grams |= ngram_hashes(text, self.options.n)

    def __call__(self, text: str) -> Result:
        if not hasattr(self, "eval_grams"):
            self.setup()
        if self.eval_grams and not self.eval_grams.isdisjoint(ngram_hashes(text, self.options.n)):
            return drop("contaminated")
        return keep(text)
