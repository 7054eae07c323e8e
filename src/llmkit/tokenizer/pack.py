"""The `tokenize` step of `llmkit data prepare`: tokenize surviving documents and pack them into
fixed-size token shards.

    OUT/tokenizer/            the tokenizer (given by `tokenizer:`, or BPE trained on the survivors)
    OUT/train-00000.bin ...   raw little-endian uint16 (vocab <= 65536) or uint32 token ids
    OUT/val-00000.bin ...     the held-out validation split
    OUT/index.json            dtype, eos id, and for each shard its file, token count, document starts

Documents are joined with eos after each one. A document goes to validation when a hash of its
text falls under `val_fraction`, so the split does not depend on order, workers or resumption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import xxhash

from llmkit.data.executors import run_jobs
from llmkit.data.shards import INDEX_FILE, ShardWriter
from llmkit.data.stats import StepStats
from llmkit.data.steps.base import Step, keep
from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir, write_json
from llmkit.tokenizer.tokenizer import Tokenizer
from llmkit.tokenizer.train import train_bpe



@dataclass
class TokenizeOptions:
    tokenizer: str | None = None  # an existing tokenizer directory; None trains one here
    vocab_size: int = 8192
    min_frequency: int = 2
    val_fraction: float = 0.01
    shard_tokens: int = 2**26


def is_validation(text: str, fraction: float) -> bool:
    return xxhash.xxh64_intdigest(text.encode()) % 1_000_000 < fraction * 1_000_000


@dataclass(frozen=True)
class EncodeJob:
    survivors: str
    out: str
    tokenizer_dir: str
    val_fraction: float


def encode_unit(job: EncodeJob) -> None:
    """Tokens of one unit's documents, each followed by eos, with per-document split flags."""
    from llmkit.data.stages import read_stage_records

    done = Path(f"{job.out}.done")
    if done.exists():
        return
    tokenizer = _cached_tokenizer(job.tokenizer_dir)
    texts = [text for _, text in read_stage_records(Path(job.survivors))]
    ids = tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
    lengths = np.array([len(doc) + 1 for doc in ids], dtype=np.int64)
    tokens = np.fromiter((t for doc in ids for t in (*doc, tokenizer.eos_id)), dtype=np.uint32, count=int(lengths.sum()))
    val = np.array([is_validation(t, job.val_fraction) for t in texts], dtype=bool)
    np.savez(job.out, tokens=tokens, lengths=lengths, val=val, chars=np.array([len(t) for t in texts], dtype=np.int64))
    done.touch()


_TOKENIZERS: dict[str, Tokenizer] = {}


def _cached_tokenizer(path: str) -> Tokenizer:
    if path not in _TOKENIZERS:
        _TOKENIZERS[path] = Tokenizer.from_dir(path)
    return _TOKENIZERS[path]


class Tokenize(Step):
    """Tokenize (training a BPE if none is given) and pack into uint16/uint32 shards."""

    name = "tokenize"
    scope = "final"
    Options = TokenizeOptions

    def __call__(self, text: str):
        return keep(text)

    def run(self, survivors: list[Path], work: Path, staging: Path, cfg,
            read_records: Callable[[Path], Iterator]) -> dict:
        work.mkdir(parents=True, exist_ok=True)
        tokenizer_dir = self.prepare_tokenizer(survivors, work / "tokenizer", read_records)
        jobs = [EncodeJob(str(path), str(work / f"unit{i:05d}.npz"), str(Path(tokenizer_dir).resolve()),
                          self.options.val_fraction) for i, path in enumerate(survivors)]
        run_jobs(encode_unit, jobs, cfg.workers, cfg.executor, "tokenize", cfg.progress, getattr(cfg, "ray_address", None))
        tokenizer = Tokenizer.from_dir(tokenizer_dir)
        tokenizer.save(staging / "tokenizer")
        return self._pack([Path(j.out) for j in jobs], staging, tokenizer)

    def prepare_tokenizer(self, survivors: list[Path], path: Path, read_records) -> Path:
        """The tokenizer directory: the one given, or a BPE trained on `read_records(file)` texts."""
        if self.options.tokenizer:
            Tokenizer.from_dir(self.options.tokenizer)  # a missing or broken tokenizer fails here, clearly
            return Path(self.options.tokenizer)
        if not (path / "tokenizer.json").is_file():
            texts = (text for file in survivors for _, text in read_records(file))
            tokenizer = train_bpe(texts, self.options.vocab_size, self.options.min_frequency, show_progress=False)
            with atomic_dir(path, kind="tokenizer") as tmp:
                tokenizer.save(tmp)
        return path

    def _pack(self, unit_files: list[Path], out: Path, tokenizer: Tokenizer) -> dict:
        dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32).newbyteorder("<")
        writers = {s: ShardWriter(out, s, dtype, self.options.shard_tokens) for s in ("train", "val")}
        stats, held = StepStats(self.name), None
        for file in unit_files:
            for doc in _documents(file):
                if held is not None:
                    self._write(held, writers, stats)
                held = doc  # the last document waits: a tiny corpus may need it for validation
        if held is not None:
            tokens, val, chars = held
            self._write((tokens, val or not writers["val"].documents, chars), writers, stats)
        for writer in writers.values():
            writer.close()
        if not writers["train"].documents:
            raise LlmkitError("too few documents survived curation to tokenize; relax the filters (see stats)")
        index = {"format": "llmkit-tokens-v1", "dtype": dtype.name, "vocab_size": tokenizer.vocab_size,
                 "eos_id": tokenizer.eos_id, "tokenizer": "tokenizer",
                 "train": writers["train"].shards, "val": writers["val"].shards,
                 "documents": {s: w.documents for s, w in writers.items()}}
        write_json(out / INDEX_FILE, index)
        stats.counts.update({f"tokens_{s}": sum(sh["tokens"] for sh in w.shards) for s, w in writers.items()})
        return stats.to_dict()

    @staticmethod
    def _write(doc: tuple[np.ndarray, bool, int], writers: dict[str, ShardWriter], stats: StepStats) -> None:
        tokens, val, chars = doc
        writers["val" if val else "train"].add(tokens)
        stats.docs_in, stats.docs_out = stats.docs_in + 1, stats.docs_out + 1
        stats.chars_in, stats.chars_out = stats.chars_in + chars, stats.chars_out + chars


def _documents(unit_file: Path) -> Iterator[tuple[np.ndarray, bool, int]]:
    arrays = np.load(unit_file)
    ends = np.cumsum(arrays["lengths"])
    for start, end, val, chars in zip(ends - arrays["lengths"], ends, arrays["val"], arrays["chars"]):
        yield arrays["tokens"][start:end], bool(val), int(chars)
