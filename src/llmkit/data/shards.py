"""Token shards on disk: raw little-endian uint16/uint32 files of a fixed number of tokens, and an
index.json naming each shard with its token count and the offsets where documents start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError

INDEX_FILE = "index.json"


class ShardWriter:
    """Appends documents to fixed-size shards of one split; a document may continue into the next."""

    def __init__(self, out: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.out, self.split, self.dtype, self.shard_tokens = out, split, dtype, shard_tokens
        self.shards: list[dict] = []
        self.handle = None
        self.documents = 0

    def _open(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}.bin"
        self.shards.append({"file": name, "tokens": 0, "doc_starts": []})
        self.handle = open(self.out / name, "wb")

    def add(self, tokens: np.ndarray) -> None:
        self.documents += 1
        first = True
        while len(tokens):
            if self.handle is None or self.shards[-1]["tokens"] == self.shard_tokens:
                self.close()
                self._open()
            shard = self.shards[-1]
            if first:
                shard["doc_starts"].append(shard["tokens"])
                first = False
            room = self.shard_tokens - shard["tokens"]
            self.handle.write(tokens[:room].astype(self.dtype).tobytes())
            shard["tokens"] += min(room, len(tokens))
            tokens = tokens[room:]

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def read_index(data_dir: str | Path) -> dict:
    path = Path(data_dir) / INDEX_FILE
    if not path.is_file():
        raise LlmkitError(f"{path} not found: prepare token shards with `llmkit data prepare --out {data_dir}`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LlmkitError(f"{path} is not valid JSON ({err}); re-run `llmkit data prepare`") from None
