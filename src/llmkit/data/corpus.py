"""The built-in default corpus: real English text already on every machine with Python.

Python's `pydoc_data` help topics (the language reference, as prose) and the docstrings of the
standard library, read from source with `ast` (no module is imported, so nothing runs). Users
point `--input` at their own text files instead.
"""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path
from typing import Iterator

from llmkit.errors import LlmkitError

SKIPPED_DIRS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__"}
MIN_DOC_CHARS = 200  # one-line docstrings teach little prose


def pydoc_topics() -> Iterator[str]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield topics[name].strip()


def stdlib_docstrings(max_chars: int | None = None) -> Iterator[str]:
    """Module, class and function docstrings of the standard library, in a fixed order."""
    root, total = Path(sysconfig.get_paths()["stdlib"]), 0
    for path in sorted(root.rglob("*.py")):
        if SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            continue
        for doc in _docstrings(path):
            yield doc
            total += len(doc)
            if max_chars is not None and total >= max_chars:
                return


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= MIN_DOC_CHARS:
                yield doc


def default_corpus(max_chars: int = 4_000_000) -> list[str]:
    """Documents of the built-in corpus, deterministic, about `max_chars` characters."""
    docs = list(pydoc_topics())
    remaining = max_chars - sum(map(len, docs))
    if remaining > 0:
        docs.extend(stdlib_docstrings(remaining))
    return docs


def read_text_documents(files: list[str | Path]) -> list[str]:
    """User text files as documents: each blank-line-separated block of a .txt file is one."""
    docs: list[str] = []
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise LlmkitError(f"input file {path} does not exist")
        text = path.read_text(encoding="utf-8", errors="replace")
        docs.extend(block.strip() for block in text.split("\n\n") if block.strip())
    if not docs:
        raise LlmkitError(f"no text found in {', '.join(map(str, files))}")
    return docs
