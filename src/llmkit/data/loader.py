"""Training data from token shards: memory-mapped, sampled by seed and step, resumable exactly.

A loader's position is one number, the count of global batches it has produced. The global
batch (batch_size x world_size windows) is a pure function of (seed, step), and rank r takes
its r-th slice, so `state_dict()` saved on 2 ranks resumes on 1 (or 8) at the very next sample,
provided the global batch size is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from llmkit.data.shards import read_index
from llmkit.errors import LlmkitError


TOKEN_DTYPES = ("uint16", "<u2", "uint32", "<u4")


def open_shard(data_dir: Path, shard: dict, dtype: np.dtype, vocab_size: int) -> np.memmap:
    """A shard checked against its index entry: a plain file in the directory, exactly `tokens` long,
    every token id inside the vocabulary. Training on a truncated shard would silently use less data."""
    name = str(shard.get("file", ""))
    path = data_dir / name
    if Path(name).name != name or not name:
        raise LlmkitError(f"{data_dir}/index.json names shard {name!r} outside the directory; re-run `llmkit data prepare`")
    if not path.is_file():
        raise LlmkitError(f"shard {path} is missing; re-run `llmkit data prepare` (or restore the file)")
    expected = int(shard.get("tokens", -1)) * dtype.itemsize
    if path.stat().st_size != expected:
        raise LlmkitError(f"shard {path} has {path.stat().st_size:,} bytes but index.json says {expected:,} "
                          "(truncated or replaced); re-run `llmkit data prepare`")
    tokens = np.memmap(path, dtype=dtype, mode="r") if expected else np.zeros(0, dtype)
    if len(tokens) and vocab_size < 2 ** (8 * dtype.itemsize) and int(tokens.max()) >= vocab_size:
        raise LlmkitError(f"shard {path} holds token id {int(tokens.max())}, outside the vocabulary of {vocab_size}; "
                          "the shards and tokenizer do not belong together")
    starts = shard.get("doc_starts", [])
    if any(not 0 <= int(s) < max(len(tokens), 1) for s in starts):
        raise LlmkitError(f"{data_dir}/index.json lists document starts outside shard {name}; re-run `llmkit data prepare`")
    return tokens


class TokenDataset:
    """One split of a prepared directory as a single virtual token stream, validated against its index."""

    def __init__(self, data_dir: str | Path, split: str = "train"):
        self.dir = Path(data_dir)
        self.index = read_index(self.dir)
        shards = self.index.get(split) or []
        if not shards:
            raise LlmkitError(f"{self.dir} has no {split} shards")
        if self.index.get("dtype") not in TOKEN_DTYPES:
            raise LlmkitError(f"{self.dir}/index.json: token dtype {self.index.get('dtype')!r} is not uint16 or uint32")
        dtype = np.dtype(self.index["dtype"]).newbyteorder("<")
        self.shards = [open_shard(self.dir, s, dtype, int(self.index["vocab_size"])) for s in shards]
        sizes = [len(s) for s in self.shards]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])  # shard start in the stream
        self.doc_starts = np.concatenate([np.asarray(s["doc_starts"], dtype=np.int64) + off
                                          for s, off in zip(shards, self.offsets[:-1])])
        self.eos_id, self.vocab_size = self.index["eos_id"], self.index["vocab_size"]
        # a mixture (llmkit.data.mixture) names its sources and records each document's
        self.source_names = [m["name"] for m in self.index.get("mixture", [])]
        self.doc_sources = np.concatenate([np.asarray(s.get("doc_sources", []), dtype=np.int64) for s in shards]) \
            if self.source_names else None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def tokens(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream, across shard boundaries."""
        out, position = [], start
        while position < start + length:
            shard = int(np.searchsorted(self.offsets, position, side="right") - 1)
            local = position - self.offsets[shard]
            take = min(start + length - position, len(self.shards[shard]) - local)
            out.append(np.asarray(self.shards[shard][local:local + take]))
            position += take
        return np.concatenate(out).astype(np.int64)

    def source_tokens(self, start: int, length: int) -> np.ndarray:
        """Tokens of [start, start + length) that each mixture source contributed, (n_sources,)."""
        counts = np.zeros(len(self.source_names), dtype=np.int64)
        first = max(int(np.searchsorted(self.doc_starts, start, side="right")) - 1, 0)
        bounds = np.append(self.doc_starts, len(self))
        for doc in range(first, len(self.doc_starts)):
            lo, hi = max(bounds[doc], start), min(bounds[doc + 1], start + length)
            if lo >= start + length:
                break
            counts[self.doc_sources[doc]] += max(hi - lo, 0)
        return counts

    def document_ids(self, start: int, length: int) -> np.ndarray:
        """For each token, the index of the document it belongs to."""
        return np.searchsorted(self.doc_starts, np.arange(start, start + length), side="right") - 1


def document_attention_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) bool: causal, and only within the same packed document."""
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    causal = torch.ones(doc_ids.shape[1], doc_ids.shape[1], dtype=torch.bool, device=doc_ids.device).tril()
    return (same & causal)[:, None]


class TokenLoader:
    """Endless (inputs, targets[, doc_ids]) batches of shape (batch_size, seq_len) for one rank."""

    def __init__(self, dataset: TokenDataset, seq_len: int, batch_size: int, seed: int = 0,
                 mode: Literal["random", "sequential"] = "random", rank: int = 0, world_size: int = 1,
                 with_document_ids: bool = False):
        if len(dataset) <= seq_len + 1:
            raise LlmkitError(f"{len(dataset)} tokens cannot fill one window of {seq_len} + 1; "
                              "lower --seq-len or prepare more data")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.dataset, self.seq_len, self.batch_size = dataset, seq_len, batch_size
        self.seed, self.mode, self.rank, self.world_size = seed, mode, rank, world_size
        self.with_document_ids = with_document_ids
        self.step = 0
        self.source_tokens = np.zeros(len(dataset.source_names), dtype=np.int64)  # this rank's, per mixture source

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _starts(self, step: int) -> np.ndarray:
        """Window starts of global batch `step` (all ranks)."""
        span = len(self.dataset) - self.seq_len - 1
        if self.mode == "random":
            return np.random.default_rng([self.seed, step]).integers(0, span + 1, size=self.global_batch)
        first = step * self.global_batch
        windows_per_epoch = (span + 1) // self.seq_len
        return ((first + np.arange(self.global_batch)) % windows_per_epoch) * self.seq_len

    def __iter__(self):
        return self

    def __next__(self):
        starts = self._starts(self.step)[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        self.step += 1
        chunk = torch.from_numpy(np.stack([self.dataset.tokens(int(s), self.seq_len + 1) for s in starts]))
        if self.dataset.source_names:
            for s in starts:
                self.source_tokens += self.dataset.source_tokens(int(s), self.seq_len)
        batch = (chunk[:, :-1], chunk[:, 1:])  # (B, T), (B, T)
        if self.with_document_ids:
            ids = np.stack([self.dataset.document_ids(int(s), self.seq_len) for s in starts])
            batch += (torch.from_numpy(ids),)
        return batch

    def state_dict(self) -> dict:
        """The position (global batches produced) and, for a mixture, this rank's input tokens so far
        from each source; the position alone decides what comes next."""
        state = {"step": self.step, "seed": self.seed, "mode": self.mode, "seq_len": self.seq_len,
                 "global_batch": self.global_batch}
        if self.dataset.source_names:
            state["source_tokens"] = dict(zip(self.dataset.source_names, self.source_tokens.tolist()))
        return state

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "mode", "seq_len", "global_batch"):
            if state[key] != getattr(self, key):
                raise LlmkitError(f"cannot resume the data loader: saved {key}={state[key]!r}, now "
                                  f"{getattr(self, key)!r}; keep seed, mode, sequence length and global batch")
        self.step = state["step"]
        saved = state.get("source_tokens", {})
        self.source_tokens = np.asarray([saved.get(n, 0) for n in self.dataset.source_names], dtype=np.int64)
