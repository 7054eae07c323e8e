"""Calibration token windows from a prepared data directory (its train split) or a text file
(.txt, or .jsonl with a "text" field), tokenized with the checkpoint's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llmkit.errors import LlmkitError


def calibration_windows(source: str | Path, tokenizer, count: int = 32, length: int = 128) -> torch.Tensor:
    """(n <= count, length) token windows taken evenly from the source."""
    path = Path(source)
    if path.is_dir():
        from llmkit.data.loader import TokenDataset

        data = TokenDataset(path, "train")
        stream = torch.from_numpy(data.tokens(0, min(len(data), count * length)))
    elif path.is_file():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            text = "\n\n".join(json.loads(line)["text"] for line in text.splitlines() if line.strip())
        stream = torch.tensor(tokenizer.encode(text, add_special_tokens=False), dtype=torch.long)
    else:
        raise LlmkitError(f"--calib {source} does not exist; give a prepared data directory, .txt or .jsonl")
    n = min(count, len(stream) // length)
    if n == 0:
        raise LlmkitError(f"--calib {source} has fewer than {length} tokens; give more text or lower --calib-len")
    return stream[: n * length].view(n, length)
