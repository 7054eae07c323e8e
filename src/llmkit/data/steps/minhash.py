"""Near-duplicate removal with MinHash + LSH (Broder 1997; Leskovec et al., Mining of Massive
Datasets ch. 3): word n-gram shingles, num_perm = bands x rows min-hashes, LSH banding for
candidate pairs, candidates verified by their signature-estimated Jaccard, union-find clusters,
and the first document of each cluster (in corpus order) kept.

Hash permutations use multiply-shift hashing ((a*x + b) mod 2^64) >> 32 with random odd a, a
2-universal family that needs no modulo by a prime. Signatures are uint32: num_perm x 4 bytes a
document, stored per work unit; the decision streams them through a memory-mapped array.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import xxhash

from llmkit.data.steps.base import CorpusStep, Result, drop, keep

TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass
class NearDedupOptions:
    n: int = 5  # words per shingle
    bands: int = 20
    rows: int = 6  # num_perm = bands * rows; P(candidate | Jaccard s) = 1 - (1 - s^rows)^bands
    threshold: float = 0.7  # verified when the estimated Jaccard reaches this
    seed: int = 1


def shingle_hashes(text: str, n: int) -> np.ndarray:
    tokens = TOKEN.findall(text.lower())
    grams = [" ".join(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))]
    return np.fromiter((xxhash.xxh32_intdigest(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


class UnionFind:
    """Parents kept so that every root is the smallest index of its cluster."""

    def __init__(self, size: int):
        self.parent = np.arange(size)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class NearDedup(CorpusStep):
    """MinHash + LSH near-duplicate removal; one document kept per cluster."""

    name = "near_dedup"
    Options = NearDedupOptions

    @property
    def num_perm(self) -> int:
        return self.options.bands * self.options.rows

    def _permutations(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.options.seed)
        a = rng.integers(1, 2**63, size=self.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        b = rng.integers(0, 2**63, size=self.num_perm, dtype=np.uint64)
        return a, b

    def signature(self, text: str, a=None, b=None) -> np.ndarray:
        if a is None:
            a, b = self._permutations()
        shingles = shingle_hashes(text, self.options.n)[:, None]  # (S, 1)
        with np.errstate(over="ignore"):  # wrap-around mod 2^64 is the hash
            return ((shingles * a + b) >> np.uint64(32)).astype(np.uint32).min(axis=0)  # (num_perm,)

    def keys(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        a, b = self._permutations()
        rows = [self.signature(text, a, b) for text in texts]
        return {"signatures": np.stack(rows) if rows else np.zeros((0, self.num_perm), dtype=np.uint32)}

    def decide(self, key_files: list[Path]) -> list[dict[str, np.ndarray]]:
        signatures, sizes = _stack(key_files, self.num_perm)
        clusters = UnionFind(len(signatures))
        for band in range(self.options.bands):
            for first, member in _band_candidates(signatures, band, self.options.rows):
                if np.mean(signatures[first] == signatures[member]) >= self.options.threshold:
                    clusters.union(int(first), int(member))
        keep_mask = np.array([clusters.find(i) == i for i in range(len(signatures))], dtype=bool)
        parts = np.split(keep_mask, np.cumsum(sizes)[:-1]) if sizes else []
        return [{"keep": part} for part in parts]

    def applier(self, decision: dict[str, np.ndarray]) -> Callable[[str], Result]:
        flags = iter(decision["keep"].tolist())
        return lambda text: keep(text) if next(flags) else drop("near_duplicate")


def _stack(key_files: list[Path], num_perm: int) -> tuple[np.ndarray, list[int]]:
    """All units' signatures in one array, read one unit at a time; past 256 MB the array is a
    memory-mapped file beside the keys, so memory stays bounded whatever the corpus size."""
    sizes = [len(np.load(f)["signatures"]) for f in key_files]
    total = sum(sizes)
    if total * num_perm * 4 <= 256 * 2**20:
        stacked = np.zeros((total, num_perm), dtype=np.uint32)
    else:
        stacked = np.lib.format.open_memmap(key_files[0].parent / "all_signatures.npy", mode="w+",
                                            dtype=np.uint32, shape=(total, num_perm))
    offset = 0
    for file, size in zip(key_files, sizes):
        stacked[offset:offset + size] = np.load(file)["signatures"]
        offset += size
    return stacked, sizes


def _band_candidates(signatures: np.ndarray, band: int, rows: int):
    """(first member, other member) pairs of documents whose band `band` is identical."""
    block = np.ascontiguousarray(signatures[:, band * rows:(band + 1) * rows])  # (N, rows)
    _, group = np.unique(block.view(np.dtype((np.void, rows * 4))).ravel(), return_inverse=True)
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        for member in order[start + 1:end]:
            yield order[start], member
